package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
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
			return applyEnvironment(cmd.Flags())
		},
	}
	root.AddCommand(newServeCommand(), newEventsCommand(), newProjectionsCommand(), newTokenCommand())
	return root
}

// applyEnvironment sets every flag not given on the command line from its
// AURAOS_* environment variable, so a flag wins over the environment, which
// wins over the default.
func applyEnvironment(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
			err = sv.Replace(splitList(v))
		} else {
			err = f.Value.Set(v)
		}
		if err != nil {
			err = fmt.Errorf("environment variable %s: %w", name, err)
		}
	})
	return err
}

// splitList splits a comma-separated environment value into its items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
