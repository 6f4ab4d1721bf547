// Command wcp is the WCP360 command line: it applies, shows and deletes
// tenants, domains and databases through wcpd's API.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/wcp360/wcp360/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
