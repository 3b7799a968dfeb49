package main

import (
	"fmt"
	"log/slog"
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
			if err := applyConfigFile(cmd.Root(), cmd.Flags(), configPath(cmd)); err != nil {
				return err
			}
			return useLogFlags(cmd)
		},
	}
	root.PersistentFlags().String("config", "", "YAML file of flag values (keys are flag names); command-line flags and AURAOS_* variables win over it")
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn or error")
	serve := newServeCommand()
	root.AddCommand(serve, newEventsCommand(), newProjectionsCommand(), newQueryCommand(), newTokenCommand(),
		newConfigCommand(serve), newVersionCommand(), newMigrateCommand(), newHashPasswordCommand(), newUsersCommand(), newKeysCommand())
	refuseUnknownSubcommands(root)
	return root
}

// useLogFlags checks --log-format and --log-level, which every command
// takes, and makes the logger they describe the default one, so that the
// stores' warnings and the log package's lines of libraries (the
// EventStoreDB client's, for one) come out in the same format, whatever
// the command.
func useLogFlags(cmd *cobra.Command) error {
	format, _ := cmd.Flags().GetString("log-format")
	level, _ := cmd.Flags().GetString("log-level")
	log, err := newLogger(format, level)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	// What libraries print through the log package are warnings.
	slog.SetLogLoggerLevel(slog.LevelWarn)
	return nil
}

// refuseUnknownSubcommands makes cmd and every command below it that only
// groups subcommands fail on a word that names none of them, with cobra's
// suggestions; cobra itself does so only for the root and prints the help
// of the others, exiting 0, so that a misspelt command went unnoticed in
// scripts.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return unknownSubcommand(c, args[0])
		}
		cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
}

// unknownSubcommand is cobra's own error for an unknown command of the root,
// for any command.
func unknownSubcommand(c *cobra.Command, name string) error {
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	if suggestions := c.SuggestionsFor(name); len(suggestions) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(suggestions, "\n\t")
	}
	return fmt.Errorf("%s\n\nRun '%s --help' for usage", msg, c.CommandPath())
}
