package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/internal/syncbuf"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

func fillStore(t *testing.T, dir string) []eventstore.Position {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var positions []eventstore.Position
	for i, stream := range []string{"chat-general", "presence-u1", "chat-general", "app-a1", "chat-random"} {
		typ := map[bool]string{true: domain.TypeMessagePosted, false: domain.TypeAppStatusChanged}[strings.HasPrefix(stream, "chat-")]
		res, err := s.Append(context.Background(), stream, eventstore.Any, eventstore.EventData{
			Type: typ, Data: json.RawMessage(fmt.Sprintf(`{"i":%d,"text":"héllo <b>"}`, i)), Metadata: json.RawMessage(`{"userId":"u1"}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.Positions...)
	}
	return positions
}

// createEmptyStore creates an event store without events in dir.
func createEmptyStore(t *testing.T, dir string) {
	t.Helper()
	s, err := sqlstore.OpenSQLite(context.Background(), dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func readLines(t *testing.T, out string) []auditLine {
	t.Helper()
	var lines []auditLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

func TestEventsReadJSONL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	positions := fillStore(t, dir)
	storage := app.Storage{DataDir: dir, EventStore: "sqlite"}
	cases := []struct {
		name    string
		opts    eventsReadOptions
		wantPos []eventstore.Position
	}{
		{"all", eventsReadOptions{}, positions},
		{"stream", eventsReadOptions{stream: "chat-general"}, []eventstore.Position{positions[0], positions[2]}},
		{"type", eventsReadOptions{types: []string{domain.TypeAppStatusChanged}}, []eventstore.Position{positions[1], positions[3]}},
		{"from", eventsReadOptions{from: positions[3].String()}, positions[3:]},
		{"stream and from", eventsReadOptions{stream: "chat-general", from: positions[1].String()}, []eventstore.Position{positions[2]}},
	}
	for _, c := range cases {
		c.opts.storage = storage
		c.opts.format = "jsonl"
		var out bytes.Buffer
		if err := runEventsRead(context.Background(), &out, c.opts); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		lines := readLines(t, out.String())
		if len(lines) != len(c.wantPos) {
			t.Fatalf("%s: %d lines, want %d:\n%s", c.name, len(lines), len(c.wantPos), out.String())
		}
		for i, l := range lines {
			if l.Position != c.wantPos[i].Commit {
				t.Errorf("%s: line %d at position %d, want %d", c.name, i, l.Position, c.wantPos[i].Commit)
			}
		}
	}
	var out bytes.Buffer
	if err := runEventsRead(context.Background(), &out, eventsReadOptions{storage: storage, format: "jsonl"}); err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(out.String(), "\n", 2)[0]
	for _, field := range []string{`"position":`, `"stream":"chat-general"`, `"version":0`, `"type":"MessagePosted"`, `"time":"`, `"data":{"i":0,"text":"héllo <b>"}`, `"metadata":{"userId":"u1"}`} {
		if !strings.Contains(first, field) {
			t.Errorf("line %s lacks %s", first, field)
		}
	}
}

func TestEventsReadEmptyStoreAndBadFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	createEmptyStore(t, dir)
	var out bytes.Buffer
	if err := runEventsRead(context.Background(), &out, eventsReadOptions{storage: app.Storage{DataDir: dir, EventStore: "sqlite"}, format: "jsonl"}); err != nil || out.Len() != 0 {
		t.Fatalf("empty store: %q, %v", out.String(), err)
	}
	bad := []eventsReadOptions{
		{storage: app.Storage{DataDir: dir, EventStore: "sqlite"}, format: "xml"},
		{storage: app.Storage{DataDir: dir, EventStore: "sqlite"}, format: "jsonl", from: "ten"},
		{storage: app.Storage{DataDir: dir, EventStore: "mysql://x"}, format: "jsonl"},
	}
	for _, o := range bad {
		if err := runEventsRead(context.Background(), io.Discard, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestEventsReadTable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillStore(t, dir)
	var out bytes.Buffer
	if err := runEventsRead(context.Background(), &out, eventsReadOptions{storage: app.Storage{DataDir: dir, EventStore: "sqlite"}, format: "table"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "POSITION") || !strings.Contains(lines[1], "chat-general") {
		t.Fatalf("table output:\n%s", out.String())
	}
}

func TestEventsReadFollow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := sqlstore.OpenSQLite(context.Background(), dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Append(context.Background(), "chat-a", eventstore.Any, eventstore.EventData{Type: "E", Data: json.RawMessage(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- runEventsRead(ctx, out, eventsReadOptions{storage: app.Storage{DataDir: dir, EventStore: "sqlite"}, format: "jsonl", follow: true})
	}()
	// The follower is another store on the same file, as another process
	// would be; it notices the new event through its cross-process check.
	if _, err := s.Append(context.Background(), "chat-a", eventstore.Any, eventstore.EventData{Type: "E", Data: json.RawMessage(`{"n":2}`)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(out.String(), "\n") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("follow printed %q", out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling the output of a running command
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("interrupted follow returned %v, want nil", err)
	}
	lines := readLines(t, out.String())
	if len(lines) != 2 || string(lines[1].Data) != `{"n":2}` {
		t.Fatalf("followed lines: %+v", lines)
	}
}

func TestEnvironmentAppliesUnlessFlagGiven(t *testing.T) {
	t.Setenv("AURAOS_DATA_DIR", "/from/env")
	t.Setenv("AURAOS_TYPE", "A, B")
	t.Setenv("AURAOS_FORMAT", "table")
	cmd := newEventsReadCommand()
	if err := cmd.Flags().Parse([]string{"--format", "jsonl"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnvironment(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	get := func(name string) string { return cmd.Flags().Lookup(name).Value.String() }
	if get("data-dir") != "/from/env" || get("format") != "jsonl" || get("type") != "[A,B]" {
		t.Fatalf("data-dir %s, format %s, type %s", get("data-dir"), get("format"), get("type"))
	}
	t.Setenv("AURAOS_FOLLOW", "maybe")
	cmd = newEventsReadCommand()
	if err := applyEnvironment(cmd.Flags()); err == nil || !strings.Contains(err.Error(), "AURAOS_FOLLOW") {
		t.Fatalf("bad boolean in the environment: %v", err)
	}
}

// An unknown --type is refused, listing the types, rather than matching
// nothing.
func TestEventsReadRefusesUnknownTypes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fillStore(t, dir)
	var out bytes.Buffer
	err := runEventsRead(context.Background(), &out, eventsReadOptions{
		storage: app.Storage{DataDir: dir, EventStore: "sqlite"}, format: "jsonl", types: []string{domain.TypeMessagePosted, "Bogus"},
	})
	if err == nil || !strings.Contains(err.Error(), `--type "Bogus"`) || !strings.Contains(err.Error(), strings.Join(domain.EventTypes(), ", ")) {
		t.Fatalf("--type Bogus: %v, want an error listing the types", err)
	}
	if out.Len() != 0 {
		t.Fatalf("printed before refusing:\n%s", out.String())
	}
}

// Rows printed after the header went out, as --follow prints them, line up
// with it, however long their values.
func TestEventsReadTableColumnsLineUp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := newTablePrinter(&out)
	at := time.Date(2026, 11, 27, 10, 15, 11, 0, time.UTC)
	rows := []eventstore.RecordedEvent{
		{Position: eventstore.Pos(1), Stream: "system", Version: 0, Type: domain.TypeNodeStarted, Time: at, Data: json.RawMessage(`{}`)},
		{Position: eventstore.Pos(123456), Stream: "chat-" + strings.Repeat("r", 60), Version: 4321, Type: domain.TypeSystemAlertBroadcast, Time: at.Add(123456 * time.Microsecond), Data: json.RawMessage(`{"a":1}`)},
		{Position: eventstore.Pos(7), Stream: "app-a", Version: 2, Type: domain.TypeAppStatusChanged, Time: at, Data: json.RawMessage(`{"b":2}`)},
	}
	for _, e := range rows {
		if err := p.print(e); err != nil {
			t.Fatal(err)
		}
		if err := p.flush(); err != nil { // each row arrives on its own, as when following
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", out.String())
	}
	header := lines[0]
	for i, e := range rows {
		line := []rune(lines[i+1])
		for _, col := range []struct{ title, value string }{
			{"TIME", "2026-11-27T10:15:11"}, {"STREAM", e.Stream[:5]}, {"VERSION", fmt.Sprint(e.Version)}, {"TYPE", e.Type}, {"DATA", "{"},
		} {
			offset := len([]rune(header[:strings.Index(header, col.title)]))
			if offset > len(line) || !strings.HasPrefix(string(line[offset:]), col.value) {
				t.Errorf("row %d: %s is not under its header:\n%s\n%s", i, col.value, header, string(line))
			}
		}
	}
}
