package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// envPrefix starts the environment variable of every flag.
const envPrefix = "AURAOS_"

// envName returns the environment variable that sets the flag name.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "auraos",
		Short:         "AuraOS realtime: an event-sourced Socket.IO backend",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvironment(cmd.Flags()); err != nil {
				return err
			}
			return applyConfigFile(cmd.Root(), cmd.Flags(), configPath(cmd))
		},
	}
	root.PersistentFlags().String("config", "", "YAML file of flag values (keys are flag names); command-line flags and AURAOS_* variables win over it")
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(newServeCommand(), newEventsCommand(), newProjectionsCommand(), newQueryCommand(), newTokenCommand(),
		newConfigCommand(root), newVersionCommand(), newMigrateCommand())
	return root
}
