package cli

import (
	"bytes"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) metricsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "metrics [SUBSTRING]",
		Short: "Print wcpd's metrics (Prometheus text format), only those whose name contains SUBSTRING if given",
		Example: `  wcp metrics                # everything GET /metrics serves
  wcp metrics nginx_reloads  # wcp360_nginx_reloads_total`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			b, err := c.Metrics(cmd.Context())
			if err != nil {
				return err
			}
			if len(args) == 1 {
				b = filterMetrics(b, args[0])
			}
			_, err = a.env.Stdout.Write(b)
			return err
		},
	}
}

// filterMetrics keeps the lines (samples and their # HELP and # TYPE) of
// the metrics whose name contains sub.
func filterMetrics(text []byte, sub string) []byte {
	var out bytes.Buffer
	for line := range strings.Lines(string(text)) {
		name := line
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				name = f[1]
			}
		}
		if i := strings.IndexAny(name, "{ \n"); i >= 0 {
			name = name[:i]
		}
		if strings.Contains(name, sub) {
			out.WriteString(line)
		}
	}
	return out.Bytes()
}
