package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/projections"
)

func newProjectionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Inspect and rebuild the read models",
	}
	cmd.AddCommand(newProjectionsStatusCommand(), newProjectionsRebuildCommand())
	return cmd
}

func newProjectionsStatusCommand() *cobra.Command {
	var storage app.Storage
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each projection's version, checkpoint, the log's head and the lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProjectionsStatus(cmd.Context(), cmd.OutOrStdout(), storage)
		},
	}
	storage.Register(cmd.Flags())
	return cmd
}

func runProjectionsStatus(ctx context.Context, out io.Writer, storage app.Storage) error {
	store, rdb, err := storage.OpenReadOnly(ctx, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	defer rdb.Close()
	statuses, err := projections.StatusQuery{DB: rdb.Reader, EventLog: store}.Handle(ctx, projections.All())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSTORED VERSION\tCHECKPOINT\tHEAD\tLAG\tSTATE")
	for _, s := range statuses {
		state := "up to date"
		switch {
		case !s.Started:
			state = "never run"
		case s.NeedsRebuild:
			state = "needs rebuild (version changed)"
		case s.Lag > 0:
			state = "behind"
		}
		if s.RebuildInProgress {
			state += ", rebuild in progress or interrupted"
		}
		stored := "-"
		if s.Started {
			stored = fmt.Sprint(s.StoredVersion)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", s.Name, s.Version, stored, s.Checkpoint, s.Head, s.Lag, state)
	}
	return tw.Flush()
}

func newProjectionsRebuildCommand() *cobra.Command {
	var storage app.Storage
	var all bool
	var gcPercent int
	cmd := &cobra.Command{
		Use:   "rebuild [NAME...] [--all]",
		Short: "Rebuild projections from the whole log, beside the live tables, and swap them in",
		Long: `Rebuild rebuilds the named projections (online-users, chat-history, app-status), or
every one with --all, from one read of the whole event log that feeds all of them. It
builds beside the live tables and swaps each in when caught up, so a running server keeps
answering; the server's runners carry on from the swapped-in checkpoint. On a terminal it
shows one progress bar for the read; it ends with a line per projection and events/s.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !all {
				return fmt.Errorf("name the projections to rebuild (online-users, chat-history, app-status) or pass --all")
			}
			if len(args) > 0 && all {
				return fmt.Errorf("pass either projection names or --all, not both")
			}
			ps, err := projections.ByName(args...)
			if err != nil {
				return err
			}
			if _, set := os.LookupEnv("GOGC"); !set && gcPercent > 0 {
				// A rebuild allocates per event and keeps little: fewer
				// collections are about a tenth of its CPU.
				debug.SetGCPercent(gcPercent)
			}
			return runProjectionsRebuild(cmd.Context(), cmd.OutOrStdout(), storage, ps, isTerminal(cmd.OutOrStdout()))
		},
	}
	storage.Register(cmd.Flags())
	cmd.Flags().BoolVar(&all, "all", false, "rebuild every projection")
	cmd.Flags().IntVar(&gcPercent, "gc-percent", 400, "Go garbage collector target (GOGC), as for serve; the GOGC variable, when set, wins")
	return cmd
}

// rebuildDescription names the projections a rebuild's progress bar is for.
func rebuildDescription(ps []projections.Projection) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name()
	}
	return strings.Join(names, ", ")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func runProjectionsRebuild(ctx context.Context, out io.Writer, storage app.Storage, ps []projections.Projection, bar bool) error {
	store, rdb, err := storage.Open(ctx, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	defer rdb.Close()
	var pb *progressbar.ProgressBar
	opts := projections.RebuildOptions{}
	if bar {
		// One bar for the one read of the log that feeds every projection.
		opts.Progress = func(through, head eventstore.Position) {
			if pb == nil {
				pb = newProgressBar(out, int64(head.Commit), rebuildDescription(ps))
			}
			_ = pb.Set64(int64(min(through.Commit, head.Commit)))
		}
	}
	sum, err := projections.RebuildAll(ctx, rdb.Writer, store, ps, opts)
	if pb != nil {
		_ = pb.Finish()
	}
	for _, res := range sum.Projections {
		fmt.Fprintf(out, "rebuilt %s: %d events through position %s\n", res.Projection, res.Events, res.Through)
	}
	if err != nil {
		return err
	}
	noun := "projections"
	if len(ps) == 1 {
		noun = "projection"
	}
	fmt.Fprintf(out, "read %d events once for %d %s in %s (%.0f events/s)\n",
		sum.Read, len(ps), noun, sum.Took.Round(1e6), sum.EventsPerSecond())
	return nil
}
