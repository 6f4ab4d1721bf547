// Command wcpd is the WCP360 daemon.
package main

import (
	"context"
	"os"

	"github.com/wcp360/wcp360/internal/wcpd"
)

func main() {
	os.Exit(wcpd.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
