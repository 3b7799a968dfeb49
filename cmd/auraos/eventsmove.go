package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/cmd/auraos/eventfilter"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/chain"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

// The export file: JSON lines. The first line names the format, each event
// is one line, and the last line counts them and gives the head, so a file
// cut short is refused:
//
//	{"auraos_export":1}
//	{"position":1,"id":"…","stream":"…","version":0,"type":"…","time":"…","data":"<base64>","metadata":"<base64>","hash":"<hex>"}
//	{"end":{"events":1,"head":"1:<hex>"}}
//
// data and metadata are base64 so that their bytes survive exactly (JSON
// tools would re-space raw JSON). position and hash form the chain of
// package eventstore/chain over the file's lines: for a SQL store they are
// the stored ones; for EventStoreDB, whose positions are not one counter,
// positions are the events' ordinals (1, 2, …) and the hashes are computed
// on export.

// exportFormat is the version of the export file's format.
const exportFormat = 1

// exportTime prints commit times with their microseconds, always.
const exportTime = "2006-01-02T15:04:05.000000Z07:00"

// exportLine is one line of the export file: the header, an event, or the
// end.
type exportLine struct {
	Export   int        `json:"auraos_export,omitempty"`
	End      *exportEnd `json:"end,omitempty"`
	Position uint64     `json:"position,omitempty"`
	ID       string     `json:"id,omitempty"`
	Stream   string     `json:"stream,omitempty"`
	Version  uint64     `json:"version"`
	Type     string     `json:"type,omitempty"`
	Time     string     `json:"time,omitempty"`
	Data     []byte     `json:"data,omitempty"`
	Metadata []byte     `json:"metadata,omitempty"`
	Hash     string     `json:"hash,omitempty"`
}

// exportEnd is the last line's content.
type exportEnd struct {
	Events uint64 `json:"events"`
	Head   string `json:"head"`
}

func newEventsExportCommand() *cobra.Command {
	var storage app.Storage
	var outPath string
	cmd := &cobra.Command{
		Use:   "export [--out FILE|-]",
		Short: "Write the whole log as JSON lines, to move it to another store",
		Long: `Export writes every event of the log, in position order, as JSON lines: a first line
{"auraos_export":1}, one line per event with its position, id, stream, version, type, commit
time, data and metadata (base64, byte for byte) and chain hash, and a last line with the
number of events and the head. From a SQL store it checks the chain as it goes and fails,
writing no complete file, when the chain is broken. --out - (the default) writes to
standard output; a FILE is written beside itself and renamed when complete. On a
terminal it shows a progress bar on standard error. The store is opened read-only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEventsExport(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), storage, outPath)
		},
	}
	storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&outPath, "out", "-", "file to write, or - for standard output")
	return cmd
}

func newEventsImportCommand() *cobra.Command {
	var storage app.Storage
	var inPath string
	cmd := &cobra.Command{
		Use:   "import --in FILE|-",
		Short: "Load an exported log into an empty event store of any kind",
		Long: `Import reads a file written by auraos events export and loads it into the event store
the storage flags select (SQLite, PostgreSQL or EventStoreDB), which must be empty: the
events keep their ids, streams, versions, types, data and metadata byte for byte and, in
the SQL stores, their commit times; they take new positions in the same order, and the
SQL chain is computed anew, so auraos events verify passes on the target. The file is
checked whole first (its chain, its versions, its last line) and refused before anything
is written when it does not verify; standard input (--in -) is kept in a temporary file
for that. A SQL target is loaded in one transaction; EventStoreDB gets one append per run
of events of a stream, and stamps its own times. Rebuild the projections afterwards
(auraos projections rebuild --all). On a terminal it shows progress bars.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEventsImport(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.InOrStdin(), storage, inPath)
		},
	}
	storage.Register(cmd.Flags())
	cmd.Flags().StringVar(&inPath, "in", "", "file to read, or - for standard input (required)")
	return cmd
}

// progress is a progress bar on a terminal, and nothing elsewhere: its
// methods do nothing on a nil bar.
type progress struct{ pb *progressbar.ProgressBar }

// newProgress returns a progress bar over total steps (-1: unknown) on out
// when bar is set.
func newProgress(out io.Writer, bar bool, total int64, description string) progress {
	if !bar {
		return progress{}
	}
	return progress{newProgressBar(out, total, description)}
}

// newProgressBar returns a progress bar over total steps on out, as every
// command that shows one draws it.
func newProgressBar(out io.Writer, total int64, description string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(out), progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
}

func (p progress) set(n int64) {
	if p.pb != nil {
		_ = p.pb.Set64(n)
	}
}

func (p progress) finish() {
	if p.pb != nil {
		_ = p.pb.Finish()
	}
}

// exportWriter writes the export file's lines.
type exportWriter struct {
	w      *bufio.Writer
	enc    *json.Encoder
	line   []byte
	hasher *chain.Hasher
	v      *chain.Verifier
}

func newExportWriter(out io.Writer) *exportWriter {
	w := bufio.NewWriterSize(out, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &exportWriter{w: w, enc: enc, hasher: chain.NewHasher(), v: chain.NewVerifier(nil)}
}

// event writes e; stored is its stored hash, or nil to compute it.
func (x *exportWriter) event(e *chain.Event, stored []byte) error {
	if stored == nil {
		h := x.hasher.Next(x.v.Head().Hash, e)
		stored = h[:]
	}
	if !x.v.Add(e, stored) {
		return x.v.Err()
	}
	x.line = appendEventLine(x.line[:0], e, x.v.Head().Hash)
	_, err := x.w.Write(x.line)
	return err
}

func runEventsExport(ctx context.Context, stdout, stderr io.Writer, storage app.Storage, outPath string) error {
	store, err := storage.OpenEventStoreReadOnly(ctx, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	out, commit, err := createOutput(stdout, outPath)
	if err != nil {
		return err
	}
	defer commit(false) //nolint:errcheck // removes an incomplete file
	x := newExportWriter(out)
	pb := newProgress(stderr, isTerminal(stderr), int64(head.Commit), "export")
	if err := x.enc.Encode(struct {
		Export int `json:"auraos_export"`
	}{exportFormat}); err != nil {
		return err
	}
	started := time.Now()
	if log, ok := store.(chainedLog); ok {
		err = log.ScanLog(ctx, func(e *chain.Event, h []byte) error {
			if x.v.Count()%4096 == 0 {
				pb.set(int64(e.Position))
			}
			return x.event(e, h)
		})
	} else {
		err = exportUnchained(ctx, store, x, pb)
	}
	if err != nil {
		var be *chain.BreakError
		if errors.As(err, &be) {
			return fmt.Errorf("export: %d events before it chain: %w", x.v.Count(), be.Coded())
		}
		return err
	}
	pb.finish()
	if err := x.enc.Encode(struct {
		End exportEnd `json:"end"`
	}{exportEnd{Events: x.v.Count(), Head: x.v.Head().String()}}); err != nil {
		return err
	}
	if err := x.w.Flush(); err != nil {
		return err
	}
	if err := commit(true); err != nil {
		return err
	}
	if outPath != "-" {
		took := time.Since(started)
		fmt.Fprintf(stdout, "exported %d events to %s in %s (%.0f events/s); head %s\n",
			x.v.Count(), outPath, took.Round(time.Millisecond), float64(x.v.Count())/took.Seconds(), x.v.Head())
	}
	return nil
}

// timeFromMicros returns the UTC time at micros, Unix microseconds.
func timeFromMicros(micros int64) time.Time { return time.UnixMicro(micros).UTC() }

// exportUnchained exports a store without a global chain (EventStoreDB):
// positions are the events' ordinals, hashes are computed here.
func exportUnchained(ctx context.Context, store eventstore.Store, x *exportWriter, pb progress) error {
	const page = 5000
	from := eventstore.Start
	for {
		evs, err := store.ReadAll(ctx, eventstore.ReadAllOptions{From: from, Limit: page})
		if err != nil {
			return err
		}
		for _, e := range evs {
			c := chain.Event{Position: x.v.Count() + 1, ID: e.ID, Stream: e.Stream, Version: e.Version, Type: e.Type,
				Data: e.Data, Metadata: e.Metadata, Time: e.Time.UnixMicro()}
			if err := x.event(&c, nil); err != nil {
				return err
			}
			pb.set(int64(e.Position.Commit))
		}
		if len(evs) < page {
			return nil
		}
		from = eventfilter.Next(evs[len(evs)-1].Position)
	}
}

// createOutput opens where export writes: stdout for "-", otherwise a
// temporary file beside path that commit(true) renames to path (and
// commit(false) removes), so path never holds an incomplete export.
func createOutput(stdout io.Writer, path string) (io.Writer, func(ok bool) error, error) {
	if path == "-" || path == "" {
		return stdout, func(bool) error { return nil }, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, nil, domain.WrapError(domain.EUNAVAILABLE, "--out "+path+": cannot create the file", err)
	}
	done := false
	commit := func(ok bool) error {
		if done {
			return nil
		}
		done = true
		if !ok {
			f.Close()
			return os.Remove(f.Name())
		}
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(f.Name())
			return domain.WrapError(domain.EUNAVAILABLE, "--out "+path+": cannot write the file", err)
		}
		if err := f.Close(); err != nil {
			os.Remove(f.Name())
			return domain.WrapError(domain.EUNAVAILABLE, "--out "+path+": cannot write the file", err)
		}
		return os.Rename(f.Name(), path)
	}
	return f, commit, nil
}

// exportReader reads the export file's lines in order.
type exportReader struct {
	r    *bufio.Reader
	line int
}

// next returns the next line, or io.EOF after the last.
func (r *exportReader) next(l *exportLine) error {
	b, err := r.r.ReadSlice('\n')
	for errors.Is(err, bufio.ErrBufferFull) {
		// A line longer than the buffer: gather it whole.
		more := append([]byte(nil), b...)
		b, err = r.r.ReadSlice('\n')
		b = append(more, b...)
	}
	if err == io.EOF && len(b) == 0 {
		return io.EOF
	}
	if err != nil && err != io.EOF {
		return domain.WrapError(domain.EUNAVAILABLE, "import: cannot read the file", err)
	}
	r.line++
	*l = exportLine{}
	if err := parseEventLine(b, l); err != nil {
		return domain.Errorf(domain.EINVALID, "import: line %d is not a line of an auraos export: %v", r.line, err)
	}
	return nil
}

// checkExport reads a whole export file and checks it: the header, every
// event's chain link, and the last line's count and head. It returns the
// number of events, or an EINVALID error (a CONFLICT one for a broken chain)
// saying what is wrong where.
func checkExport(in io.Reader, pb progress) (uint64, error) {
	r := &exportReader{r: bufio.NewReaderSize(in, 1<<20)}
	var l exportLine
	if err := r.next(&l); err == io.EOF || err == nil && l.Export != exportFormat {
		return 0, domain.Errorf(domain.EINVALID, "import: the file does not start with {\"auraos_export\":%d}: not an auraos export (of this version)", exportFormat)
	} else if err != nil {
		return 0, err
	}
	v := chain.NewVerifier(nil)
	for {
		err := r.next(&l)
		if err == io.EOF {
			return 0, domain.Errorf(domain.EINVALID, "import: the file ends after %d events without its last line: it is cut short", v.Count())
		}
		if err != nil {
			return 0, err
		}
		if l.End != nil {
			if l.End.Events != v.Count() || l.End.Head != v.Head().String() {
				return 0, domain.Errorf(domain.EINVALID, "import: the last line says %d events ending at %s, the file holds %d ending at %s", l.End.Events, l.End.Head, v.Count(), v.Head())
			}
			if err := r.next(&l); err != io.EOF {
				return 0, domain.Errorf(domain.EINVALID, "import: line %d follows the last line", r.line)
			}
			return v.Count(), nil
		}
		e, err := l.chainEvent(r.line)
		if err != nil {
			return 0, err
		}
		h, err := chain.ParseHash(l.Hash)
		if err != nil {
			return 0, domain.Errorf(domain.EINVALID, "import: line %d: %s", r.line, domain.ErrorMessage(err))
		}
		if !v.Add(&e, h[:]) {
			var be *chain.BreakError
			errors.As(v.Err(), &be)
			return 0, fmt.Errorf("import: the file's chain does not verify (line %d): %w", r.line, be.Coded())
		}
		if v.Count()%4096 == 0 {
			pb.set(int64(v.Count()))
		}
	}
}

// chainEvent returns the event line l (line n of the file) as the chain
// covers it.
func (l *exportLine) chainEvent(n int) (chain.Event, error) {
	if l.Position == 0 || l.ID == "" {
		return chain.Event{}, domain.Errorf(domain.EINVALID, "import: line %d is not an event (no position or id)", n)
	}
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil || t.Year() < 1 || t.Year() > 9999 {
		return chain.Event{}, domain.Errorf(domain.EINVALID, "import: line %d: time %q is not RFC 3339", n, l.Time)
	}
	return chain.Event{Position: l.Position, ID: l.ID, Stream: l.Stream, Version: l.Version, Type: l.Type,
		Data: l.Data, Metadata: l.Metadata, Time: t.UnixMicro()}, nil
}

// exportEvents yields the events of a checked export file, decoded on a
// goroutine of their own ahead of the consumer.
func exportEvents(in io.Reader) iter.Seq2[eventstore.RecordedEvent, error] {
	return ahead(readExportEvents(in))
}

// readExportEvents yields the events of a checked export file.
func readExportEvents(in io.Reader) iter.Seq2[eventstore.RecordedEvent, error] {
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		r := &exportReader{r: bufio.NewReaderSize(in, 1<<20)}
		var l exportLine
		if err := r.next(&l); err != nil {
			yield(eventstore.RecordedEvent{}, err)
			return
		}
		for {
			if err := r.next(&l); err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			if l.End != nil {
				return
			}
			e, err := l.chainEvent(r.line)
			if err != nil {
				yield(eventstore.RecordedEvent{}, err)
				return
			}
			if !yield(eventstore.RecordedEvent{ID: e.ID, Stream: e.Stream, Version: e.Version, Type: e.Type,
				Time: timeFromMicros(e.Time), Data: e.Data, Metadata: e.Metadata}, nil) {
				return
			}
		}
	}
}

// aheadBatch is how many events ahead hands over at a time.
const aheadBatch = 256

// ahead runs seq on its own goroutine, a few batches ahead of the consumer,
// so that decoding the file and writing the store use two cores. The
// goroutine ends with seq or as soon as the consumer stops, before ahead's
// sequence returns.
func ahead(seq iter.Seq2[eventstore.RecordedEvent, error]) iter.Seq2[eventstore.RecordedEvent, error] {
	type item struct {
		e   eventstore.RecordedEvent
		err error
	}
	return func(yield func(eventstore.RecordedEvent, error) bool) {
		batches := make(chan []item, 4)
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			defer close(batches)
			batch := make([]item, 0, aheadBatch)
			for e, err := range seq {
				batch = append(batch, item{e, err})
				if len(batch) < aheadBatch && err == nil {
					continue
				}
				select {
				case batches <- batch:
				case <-stop:
					return
				}
				batch = make([]item, 0, aheadBatch)
			}
			if len(batch) > 0 {
				select {
				case batches <- batch:
				case <-stop:
				}
			}
		}()
		defer func() {
			close(stop)
			<-done
		}()
		for b := range batches {
			for _, it := range b {
				if !yield(it.e, it.err) {
					return
				}
			}
		}
	}
}

// importer is what a store offers for a bulk load: the SQL stores.
type importer interface {
	Import(ctx context.Context, events iter.Seq2[eventstore.RecordedEvent, error], progress func(n int)) (int, error)
}

func runEventsImport(ctx context.Context, stdout, stderr io.Writer, stdin io.Reader, storage app.Storage, inPath string) error {
	if inPath == "" {
		return domain.Errorf(domain.EINVALID, "--in is required: the file written by auraos events export, or - for standard input")
	}
	bar := isTerminal(stderr)
	file, err := openImportFile(stdin, inPath)
	if err != nil {
		return err
	}
	defer file.Close()
	check := newProgress(stderr, bar, -1, "check")
	n, err := checkExport(file, check)
	check.finish()
	if err != nil {
		return err
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return domain.WrapError(domain.EUNAVAILABLE, "import: cannot read the file again", err)
	}
	store, err := storage.OpenEventStore(ctx, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	if !head.IsZero() {
		return sqlstore.ErrNotEmpty
	}
	pb := newProgress(stderr, bar, int64(n), "import")
	started := time.Now()
	var imported int
	if im, ok := store.(importer); ok {
		imported, err = im.Import(ctx, exportEvents(file), func(k int) { pb.set(int64(k)) })
	} else {
		imported, err = appendAll(ctx, store, exportEvents(file), func(k int) { pb.set(int64(k)) })
	}
	if err != nil {
		return err
	}
	pb.finish()
	took := time.Since(started)
	_, err = fmt.Fprintf(stdout, "imported %d events in %s (%.0f events/s); rebuild the projections next: auraos projections rebuild --all\n",
		imported, took.Round(time.Millisecond), float64(imported)/took.Seconds())
	return err
}

// openImportFile opens the file to import; standard input is copied to a
// temporary file first (removed on Close), since the file is read twice.
func openImportFile(stdin io.Reader, path string) (*os.File, error) {
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, domain.WrapError(domain.EINVALID, "--in "+path+": cannot open the file", err)
		}
		return f, nil
	}
	f, err := os.CreateTemp("", "auraos-import-*")
	if err != nil {
		return nil, domain.WrapError(domain.EUNAVAILABLE, "import: cannot create a temporary file for standard input", err)
	}
	os.Remove(f.Name()) // unlinked: it goes when closed, whatever happens
	if _, err := io.Copy(f, stdin); err != nil {
		f.Close()
		return nil, domain.WrapError(domain.EUNAVAILABLE, "import: cannot keep standard input in a temporary file", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, domain.WrapError(domain.EUNAVAILABLE, "import: cannot read the temporary file", err)
	}
	return f, nil
}

// appendBatch caps one append of appendAll, in events and in bytes
// (KurrentDB refuses appends over 1 MiB by default).
const (
	appendBatchEvents = 500
	appendBatchBytes  = 512 << 10
)

// appendAll loads events into a store without a bulk path (EventStoreDB):
// one append per run of consecutive events of a stream, each expecting the
// stream to be exactly where the previous one left it.
func appendAll(ctx context.Context, store eventstore.Store, events iter.Seq2[eventstore.RecordedEvent, error], progress func(int)) (int, error) {
	var (
		stream string
		first  uint64
		batch  []eventstore.EventData
		size   int
		n      int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		expected := eventstore.NoStream
		if first > 0 {
			expected = eventstore.Exact(first - 1)
		}
		if _, err := store.Append(ctx, stream, expected, batch...); err != nil {
			return fmt.Errorf("import: append to %q at version %d: %w", stream, first, err)
		}
		n += len(batch)
		progress(n)
		batch, size = batch[:0], 0
		return nil
	}
	for e, err := range events {
		if err != nil {
			return n, err
		}
		if e.Stream != stream || len(batch) == appendBatchEvents || size+len(e.Data)+len(e.Metadata) > appendBatchBytes {
			if err := flush(); err != nil {
				return n, err
			}
			stream, first = e.Stream, e.Version
		}
		batch = append(batch, eventstore.EventData{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata})
		size += len(e.Data) + len(e.Metadata)
	}
	return n, flush()
}
