// Command auraos serves the AuraOS realtime protocol on an event-sourced core,
// rebuilds its projections and reads its event log for auditors.
//
// It is the only package that reads the environment and picks concrete
// stores: every setting is a flag, and every flag can also be given as an
// AURAOS_* environment variable (the flag name in upper case, dashes as
// underscores); a flag on the command line wins over the environment.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/auraos/realtime/internal/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	if err := root.ExecuteContext(ctx); err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			os.Exit(0) // interrupted on purpose
		}
		// The operator at the terminal needs the whole chain, causes included;
		// a library's cause may quote a connection string, so it is masked
		// once more here, where every failure passes.
		fmt.Fprintln(os.Stderr, "auraos:", redact.Text(err.Error()))
		os.Exit(1)
	}
}
