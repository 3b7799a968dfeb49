package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

// chainedLog is a store whose log carries the hash chain: the SQL stores.
type chainedLog interface {
	ScanLog(ctx context.Context, fn func(e *chain.Event, hash []byte) error) error
	ChainHead(ctx context.Context) (chain.Anchor, error)
}

// streamChained is a store whose streams each carry a chain: EventStoreDB.
type streamChained interface {
	VerifyChains(ctx context.Context) (events uint64, streams int, err error)
}

// errNoGlobalChain is the error of head and --expect on EventStoreDB.
var errNoGlobalChain = domain.Errorf(domain.EINVALID, "this event store has no global hash chain, only one per stream (EventStoreDB appends are not serialized by auraos): events verify checks the streams' chains; head and --expect need a SQL store")

// chainOf returns store's chain, or an EINVALID error naming what the store
// does instead.
func chainOf(store eventstore.Store) (chainedLog, error) {
	if c, ok := store.(chainedLog); ok {
		return c, nil
	}
	return nil, errNoGlobalChain
}

// eventsChainOptions are the flags of `auraos events verify` and `head`.
type eventsChainOptions struct {
	storage app.Storage
	expect  string
	format  string
}

func newEventsVerifyCommand() *cobra.Command {
	var o eventsChainOptions
	cmd := &cobra.Command{
		Use:   "verify [--expect POSITION:HASH]",
		Short: "Recompute the log's hash chain and report the first event that was edited, deleted, inserted or moved",
		Long: `Verify reads the whole log in position order, from one snapshot, and recomputes
each event's SHA-256 link over the previous link and the event's position, id, stream,
version, type, data, metadata and commit time (the encoding is in the README). It prints
how many events it checked and the head (POSITION:HASH). When an event does not match
its stored hash it exits 1 naming the first position where the log differs from what was
appended: the edited, inserted or moved event, or the first deleted one.

The chain has no secret: someone who can write the database can rewrite it whole.
Record the head elsewhere (auraos events head) and pass it later as --expect: verify then
also proves the log still holds exactly that prefix, and fails if the event at that
position is missing or has another hash. The store is opened read-only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEventsVerify(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&o.expect, "expect", "", "also require the event at POSITION to have HASH (a head recorded earlier)")
	cmd.Flags().StringVar(&o.format, "format", "table", "output format: table or json")
	return cmd
}

func newEventsHeadCommand() *cobra.Command {
	var o eventsChainOptions
	cmd := &cobra.Command{
		Use:   "head",
		Short: "Print the position and hash of the log's last event, to record elsewhere",
		Long: `Head prints the position and the stored hash of the last event (position 0 and 64
zeros for an empty log). It does not check the chain (verify does): record its output
somewhere the database's administrators cannot write, and pass it to
auraos events verify --expect POSITION:HASH later. The store is opened read-only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEventsHead(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&o.format, "format", "table", "output format: table or json")
	return cmd
}

// checkChainFormat refuses a --format the chain commands do not print.
func checkChainFormat(format string) error {
	if format != "table" && format != "json" {
		return domain.Errorf(domain.EINVALID, "--format %q: want table or json", format)
	}
	return nil
}

// headJSON is the head as --format json prints it.
type headJSON struct {
	Position uint64 `json:"position"`
	Hash     string `json:"hash"`
}

// verifyJSON is verify's report as --format json prints it: the head of a
// SQL store's chain, the number of streams of EventStoreDB's.
type verifyJSON struct {
	Events  uint64    `json:"events"`
	Head    *headJSON `json:"head,omitempty"`
	Streams int       `json:"streams,omitempty"`
}

func runEventsVerify(ctx context.Context, out io.Writer, o eventsChainOptions) error {
	if err := checkChainFormat(o.format); err != nil {
		return err
	}
	var expect *chain.Anchor
	if o.expect != "" {
		a, err := chain.ParseAnchor(o.expect)
		if err != nil {
			return domain.WrapError(domain.EINVALID, "--expect: "+domain.ErrorMessage(err), err)
		}
		expect = &a
	}
	store, err := o.storage.OpenEventStoreReadOnly(ctx, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	if sc, ok := store.(streamChained); ok {
		if expect != nil {
			return errNoGlobalChain
		}
		return verifyStreamChains(ctx, out, sc, o.format)
	}
	log, err := chainOf(store)
	if err != nil {
		return err
	}
	v := chain.NewVerifier(expect)
	errBroken := errors.New("broken")
	err = log.ScanLog(ctx, func(e *chain.Event, h []byte) error {
		if !v.Add(e, h) {
			return errBroken
		}
		return nil
	})
	if err != nil && err != errBroken {
		return err
	}
	if err := v.Err(); err != nil {
		var be *chain.BreakError
		if errors.As(err, &be) {
			return fmt.Errorf("%d events before it chain: %w", v.Count(), be.Coded())
		}
		return err
	}
	head := v.Head()
	if o.format == "json" {
		return writeJSONLine(out, verifyJSON{Events: v.Count(), Head: &headJSON{Position: head.Position, Hash: head.Hash.String()}})
	}
	msg := fmt.Sprintf("the chain is intact: checked %d events; head %s\n", v.Count(), head)
	if expect != nil {
		msg = fmt.Sprintf("the chain is intact and holds %s: checked %d events; head %s\n", expect, v.Count(), head)
	}
	_, err = io.WriteString(out, msg)
	return err
}

// verifyStreamChains checks each stream's chain of an EventStoreDB store.
func verifyStreamChains(ctx context.Context, out io.Writer, sc streamChained, format string) error {
	events, streams, err := sc.VerifyChains(ctx)
	if err != nil {
		var be *chain.BreakError
		if errors.As(err, &be) {
			return fmt.Errorf("%d events before it chain: %w", events, be.Coded())
		}
		return err
	}
	if format == "json" {
		return writeJSONLine(out, verifyJSON{Events: events, Streams: streams})
	}
	_, err = fmt.Fprintf(out, "the stream chains are intact: checked %d events in %d streams\n", events, streams)
	return err
}

func runEventsHead(ctx context.Context, out io.Writer, o eventsChainOptions) error {
	if err := checkChainFormat(o.format); err != nil {
		return err
	}
	store, err := o.storage.OpenEventStoreReadOnly(ctx, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	log, err := chainOf(store)
	if err != nil {
		return err
	}
	head, err := log.ChainHead(ctx)
	if err != nil {
		return err
	}
	if o.format == "json" {
		return writeJSONLine(out, headJSON{Position: head.Position, Hash: head.Hash.String()})
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POSITION\tHASH")
	fmt.Fprintf(tw, "%d\t%s\n", head.Position, head.Hash)
	return tw.Flush()
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(out io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}
