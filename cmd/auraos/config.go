package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/auraos/realtime/internal/redact"
)

// Configuration comes, for every flag, from the command line, else from its
// AURAOS_* environment variable, else from the --config file, else from the
// flag's default.

// secretFlags are masked by `config print` and never logged.
var secretFlags = map[string]bool{"jwt-secret": true, "ai-key": true, "admin-ui-password-hash": true, "key-encryption-key": true}

// urlFlags may carry a password in their URL, masked by `config print`.
var urlFlags = map[string]bool{"signals": true, "event-store": true, "read-db": true, "ai-url": true, "jwks-url": true}

// applyEnvironment sets every flag not given on the command line from its
// AURAOS_* environment variable and marks it as set.
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
		if err = setFlag(flags, f, v); err != nil {
			err = fmt.Errorf("environment variable %s: %w", name, err)
		}
	})
	return err
}

// setFlag sets a flag from text (a list flag from comma-separated text) and
// marks it as set.
func setFlag(flags *pflag.FlagSet, f *pflag.Flag, v string) error {
	if sv, isSlice := f.Value.(pflag.SliceValue); isSlice {
		if err := sv.Replace(splitList(v)); err != nil {
			return err
		}
		f.Changed = true
		return nil
	}
	return flags.Set(f.Name, v)
}

// splitList splits a comma-separated value into its items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// applyConfigFile sets every flag still unset from the YAML file at path,
// whose keys are flag names. A key that is no flag of any command is an
// error, so a typo does not pass unnoticed.
func applyConfigFile(root *cobra.Command, flags *pflag.FlagSet, path string) error {
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return fmt.Errorf("--config %s: %w", path, err)
	}
	known := allFlagNames(root)
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if !known[key] {
			return fmt.Errorf("--config %s: %q is not a flag of any auraos command", path, key)
		}
		f := flags.Lookup(key)
		if f == nil || f.Changed || key == "config" {
			continue // another command's flag, or set on the command line or in the environment
		}
		text, err := configText(values[key])
		if err != nil {
			return fmt.Errorf("--config %s: %s: %w", path, key, err)
		}
		if err := setFlag(flags, f, text); err != nil {
			return fmt.Errorf("--config %s: %s: %w", path, key, err)
		}
	}
	return nil
}

// configText turns a YAML value into a flag's text form.
func configText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, err := configText(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", fmt.Errorf("a map is not a flag value")
	default:
		return fmt.Sprint(x), nil
	}
}

func allFlagNames(root *cobra.Command) map[string]bool {
	names := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return names
}

// maskedValue is a flag's value as `config print` shows it.
func maskedValue(f *pflag.Flag) string {
	v := f.Value.String()
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		v = strings.Join(sv.GetSlice(), ",")
	}
	switch {
	case secretFlags[f.Name] && v != "":
		return "********"
	case urlFlags[f.Name]:
		return redact.Text(v)
	}
	return v
}

// newConfigCommand is `config`, whose `print` takes every flag of serve (the
// same flags, so that the values given are serve's) and prints what serve
// would run with.
func newConfigCommand(serve *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Show the effective configuration"}
	printCmd := &cobra.Command{
		Use:   "print [serve's flags]",
		Short: "Print the effective configuration of serve (flags, environment, --config file, defaults), secrets masked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The root has applied the environment and the --config file
			// to these flags, as it does for serve.
			return printConfig(cmd.OutOrStdout(), cmd.Flags())
		},
	}
	printCmd.Flags().AddFlagSet(serve.Flags())
	cmd.AddCommand(printCmd)
	return cmd
}

func printConfig(out io.Writer, sets ...*pflag.FlagSet) error {
	values := map[string]string{}
	for _, flags := range sets {
		flags.VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && f.Name != "config" {
				values[f.Name] = maskedValue(f)
			}
		})
	}
	b, err := yaml.Marshal(values)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// configPath is the --config flag (or AURAOS_CONFIG) of the running command.
func configPath(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("config"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return os.Getenv(envName("config"))
}
