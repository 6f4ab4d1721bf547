package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) validateCommand() *cobra.Command {
	var files fileFlags
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR|-",
		Short: "Check manifests offline, without wcpd",
		Long: `Validate decodes, defaults and validates every manifest exactly as wcpd
would, without contacting it. It prints one line per problem, naming the file,
document, line and field, and exits 1; or it says how many documents are valid.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ms, problems := a.loadManifests(files)
			if problems != nil {
				a.printProblems(problems)
				return exitCode(1)
			}
			noun := "documents"
			if len(ms) == 1 {
				noun = "document"
			}
			fmt.Fprintf(a.env.Stdout, "%d %s valid\n", len(ms), noun)
			return nil
		},
	}
	files.register(cmd, "validate")
	return cmd
}
