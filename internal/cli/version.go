package cli

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/wcp360/wcp360/internal/version"
)

// Version is the version of this wcp binary: the linker's, else the
// module's from the build information, else "dev".
func Version() string {
	if version.Version != "" && version.Version != "dev" {
		return version.Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func (a *app) versionCommand() *cobra.Command {
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of wcp and of the wcpd it talks to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runVersion(cmd.Context(), clientOnly)
		},
	}
	cmd.Flags().BoolVar(&clientOnly, "client", false, "print only the version of wcp")
	return cmd
}

func (a *app) runVersion(ctx context.Context, clientOnly bool) error {
	fmt.Fprintf(a.env.Stdout, "Client Version: %s\n", Version())
	if clientOnly {
		return nil
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	h, err := c.Health(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.env.Stdout, "Server Version: %s (node %s, %s)\n", orNone(h.Version), orNone(h.Node), h.Status)
	return nil
}
