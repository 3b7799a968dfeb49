package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/cmd/auraos/eventfilter"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

func newEventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Read, verify, export and import the event log",
	}
	cmd.AddCommand(newEventsReadCommand(), newEventsVerifyCommand(), newEventsHeadCommand(), newEventsExportCommand(), newEventsImportCommand())
	return cmd
}

// eventsReadOptions are the flags of `auraos events read`.
type eventsReadOptions struct {
	storage app.Storage
	stream  string
	types   []string
	from    string
	follow  bool
	format  string
	// Who did what (eventsfilter.go); the *Set fields say the flag was
	// given, so an empty id is refused rather than matching everyone.
	user, correlation       string
	userSet, correlationSet bool
	since, until            string
}

func newEventsReadCommand() *cobra.Command {
	var o eventsReadOptions
	cmd := &cobra.Command{
		Use:   "read",
		Short: "Print stored events in global order, one JSON object a line",
		Long: `Print stored events in global order. With --format jsonl (the default) each line
is one JSON object: {"position","id","stream","version","type","time","data","metadata"},
where data and metadata are the event's JSON exactly as stored and metadata says who
caused the event. An empty store prints nothing. --follow keeps printing new events
until interrupted.

--user, --correlation, --since and --until narrow the output, together with --stream,
--type and --from (every filter must pass) and with --follow. --user UID selects the
events the user caused (metadata.userId) and those about them (their presence and chat
memberships, messages they posted, notifications to or from them, apps, agents and
alerts they changed or sent). --correlation ID selects metadata.correlationId: what one
client event caused, an AI reply included. --since and --until TIME compare commit times
(RFC 3339, both ends inclusive); --until POSITION ends at that position. A --follow with
--until ends once the log passes it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.userSet, o.correlationSet = cmd.Flags().Changed("user"), cmd.Flags().Changed("correlation")
			return runEventsRead(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&o.stream, "stream", "", "only events of this stream (exact name)")
	cmd.Flags().StringSliceVar(&o.types, "type", nil, "only events of these types (repeat or comma-separate)")
	cmd.Flags().StringVar(&o.from, "from", "", "start at this global position (inclusive)")
	cmd.Flags().BoolVar(&o.follow, "follow", false, "keep printing new events until interrupted")
	cmd.Flags().StringVar(&o.format, "format", "jsonl", "output format: jsonl or table")
	cmd.Flags().StringVar(&o.user, "user", "", "only events this user caused or that are about them")
	cmd.Flags().StringVar(&o.correlation, "correlation", "", "only events with this metadata correlationId")
	cmd.Flags().StringVar(&o.since, "since", "", "only events committed at or after this RFC 3339 time")
	cmd.Flags().StringVar(&o.until, "until", "", "only events committed at or before this RFC 3339 time, or at or before this position")
	return cmd
}

func runEventsRead(ctx context.Context, out io.Writer, o eventsReadOptions) error {
	var printer eventPrinter
	switch o.format {
	case "jsonl":
		printer = newJSONLPrinter(out)
	case "table":
		printer = newTablePrinter(out)
	default:
		return fmt.Errorf("--format %q: want jsonl or table", o.format)
	}
	for _, t := range o.types {
		if !slices.Contains(domain.EventTypes(), t) {
			return fmt.Errorf("--type %q: no such event type (the types are %s)", t, strings.Join(domain.EventTypes(), ", "))
		}
	}
	from := eventstore.Start
	if o.from != "" {
		p, err := eventstore.ParsePosition(o.from)
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		from = p
	}
	sel, err := newEventSelection(o)
	if err != nil {
		return err
	}
	store, err := o.storage.OpenLogReadOnly(ctx, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()

	filter := eventstore.Filter{EventTypes: o.types}
	if o.stream != "" {
		filter.StreamPrefixes = []string{o.stream}
	}
	wanted := func(e eventstore.RecordedEvent) bool {
		return (o.stream == "" || e.Stream == o.stream) && !e.Position.Less(from) && sel.match(e)
	}

	// Catch up in pages, flushing each, then follow live if asked.
	const page = 1000
	last := eventstore.Start
	next := from
	for {
		evs, err := store.ReadAll(ctx, eventstore.ReadAllOptions{From: next, Limit: page, Filter: filter})
		if err != nil {
			return err
		}
		ended := false
		for _, e := range evs {
			if ended = sel.beyond(e.Position); ended {
				break
			}
			if wanted(e) {
				if err := printer.print(e); err != nil {
					return err
				}
			}
			last = e.Position
		}
		if err := printer.flush(); err != nil {
			return err
		}
		if ended {
			return nil
		}
		if len(evs) < page {
			break
		}
		next = eventfilter.Next(last)
	}
	if !o.follow || sel.reached(last) {
		return nil
	}
	if deadline, ok := sel.followDeadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	sub, err := store.Subscribe(ctx, eventstore.SubscribeOptions{After: last, Filter: filter})
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted, or --until TIME has passed
		}
		return err
	}
	defer sub.Close()
	for {
		b, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted, or --until TIME has passed: a normal end of --follow
			}
			return err
		}
		ended := false
		for _, e := range b.Events {
			if ended = sel.beyond(e.Position) || sel.lateCommit(e); ended {
				break
			}
			if wanted(e) {
				if err := printer.print(e); err != nil {
					return err
				}
			}
		}
		if err := printer.flush(); err != nil {
			return err
		}
		if ended || sel.reached(b.Through) {
			return nil
		}
	}
}

type eventPrinter interface {
	print(e eventstore.RecordedEvent) error
	flush() error
}

// auditLine is one line of `events read --format jsonl`.
type auditLine struct {
	Position uint64          `json:"position"`
	ID       string          `json:"id"`
	Stream   string          `json:"stream"`
	Version  uint64          `json:"version"`
	Type     string          `json:"type"`
	Time     string          `json:"time"`
	Data     json.RawMessage `json:"data"`
	Metadata json.RawMessage `json:"metadata"`
}

type jsonlPrinter struct {
	w   *bufio.Writer
	enc *json.Encoder
}

func newJSONLPrinter(out io.Writer) *jsonlPrinter {
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &jsonlPrinter{w: w, enc: enc}
}

func (p *jsonlPrinter) print(e eventstore.RecordedEvent) error {
	return p.enc.Encode(auditLine{
		Position: e.Position.Commit, ID: e.ID, Stream: e.Stream, Version: e.Version, Type: e.Type,
		Time: e.Time.UTC().Format(time.RFC3339Nano), Data: e.Data, Metadata: e.Metadata,
	})
}

func (p *jsonlPrinter) flush() error { return p.w.Flush() }

// tablePrinter prints --format table. Its columns have fixed widths rather
// than widths measured over the rows, because with --follow rows arrive
// after the header is out and must still line up with it.
type tablePrinter struct {
	w      *bufio.Writer
	header bool
}

func newTablePrinter(out io.Writer) *tablePrinter {
	return &tablePrinter{w: bufio.NewWriter(out)}
}

// tableDataWidth caps the data column; jsonl prints data in full.
const tableDataWidth = 80

// tableTime prints every time in the same width (trailing zeros kept).
const tableTime = "2006-01-02T15:04:05.000000Z07:00"

// tableColumns are the columns before the data, which comes last and is not
// padded. A longer stream or type is cut with "…"; a position or version
// is never cut, a wider one only pushes the rest of its row.
var tableColumns = []struct {
	title string
	width int
	cut   bool
}{
	{"POSITION", 10, false},
	{"TIME", len("2026-11-27T10:15:11.123456Z"), false},
	{"STREAM", 32, true},
	{"VERSION", 7, false},
	{"TYPE", 20, true}, // the longest type, SystemAlertBroadcast, fits
}

func (p *tablePrinter) print(e eventstore.RecordedEvent) error {
	if !p.header {
		p.header = true
		titles := make([]string, len(tableColumns))
		for i, c := range tableColumns {
			titles[i] = c.title
		}
		p.row(titles, "DATA")
	}
	data := strings.Join(strings.Fields(string(e.Data)), " ")
	p.row([]string{e.Position.String(), e.Time.UTC().Format(tableTime), e.Stream, strconv.FormatUint(e.Version, 10), e.Type},
		shorten(data, tableDataWidth))
	return nil // a write error is the flush's
}

// row writes one line: cells padded to their columns, then last.
func (p *tablePrinter) row(cells []string, last string) {
	for i, c := range tableColumns {
		cell := cells[i]
		if c.cut {
			cell = shorten(cell, c.width)
		}
		fmt.Fprintf(p.w, "%-*s  ", c.width, cell)
	}
	fmt.Fprintln(p.w, last)
}

// shorten cuts s to at most n characters, the last of them "…".
func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func (p *tablePrinter) flush() error { return p.w.Flush() }
