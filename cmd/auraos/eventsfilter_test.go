package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auraos/realtime/cmd/auraos/app"
	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/internal/syncbuf"
)

// readPositions runs `events read` with o over the data directory and
// returns the positions printed.
func readPositions(t *testing.T, ctx context.Context, dir string, o eventsReadOptions) ([]uint64, error) {
	t.Helper()
	o.storage = app.Storage{DataDir: dir, EventStore: "sqlite"}
	if o.format == "" {
		o.format = "jsonl"
	}
	o.userSet, o.correlationSet = o.userSet || o.user != "", o.correlationSet || o.correlation != ""
	var out bytes.Buffer
	err := runEventsRead(ctx, &out, o)
	var got []uint64
	for _, l := range readLines(t, out.String()) {
		got = append(got, l.Position)
	}
	return got, err
}

func positions(ps ...uint64) []uint64 { return ps }

// Every filter alone and in combination with the others and with --stream,
// --type and --from, over the audit log (see auditLog for what is where).
func TestEventsReadWhoDidWhat(t *testing.T) {
	t.Parallel()
	l := writeAuditLog(t)
	cases := []struct {
		name string
		opts eventsReadOptions
		want []uint64
	}{
		{"user as actor and as subject", eventsReadOptions{user: "alice"}, positions(1, 2, 4, 6, 8, 10, 11, 12)},
		{"user: notifications from, messages, apps", eventsReadOptions{user: "bob"}, positions(3, 6, 7, 9)},
		{"user only named as a notification's recipient", eventsReadOptions{user: "carol"}, positions(12)},
		{"the assistant", eventsReadOptions{user: "ai-assistant"}, positions(5)},
		{"a user id JSON escapes", eventsReadOptions{user: "d&d<1>"}, positions(13)},
		{"a user nobody is", eventsReadOptions{user: "zed"}, nil},
		{"a prefix of a user is not the user", eventsReadOptions{user: "ali"}, nil},
		{"correlation: a message and the reply it caused", eventsReadOptions{correlation: l.ask}, positions(4, 5)},
		{"correlation: one disconnect's two events", eventsReadOptions{correlation: l.bye}, positions(10, 11)},
		{"correlation nobody used", eventsReadOptions{correlation: eventstore.NewID()}, nil},
		{"since a commit, inclusive", eventsReadOptions{since: at("10:05")}, positions(6, 7, 8, 9, 10, 11, 12, 13)},
		{"since, another zone", eventsReadOptions{since: "2026-11-27T11:05:00+01:00"}, positions(6, 7, 8, 9, 10, 11, 12, 13)},
		{"since between commits", eventsReadOptions{since: "2026-11-27T10:04:00.000001Z"}, positions(6, 7, 8, 9, 10, 11, 12, 13)},
		{"until a time, inclusive", eventsReadOptions{until: at("10:05")}, positions(1, 2, 3, 4, 5, 6)},
		{"until a microsecond before a commit", eventsReadOptions{until: "2026-11-27T10:04:59.999999Z"}, positions(1, 2, 3, 4, 5)},
		{"until a position", eventsReadOptions{until: "3"}, positions(1, 2, 3)},
		{"until position 0", eventsReadOptions{until: "0"}, nil},
		{"since and until the same moment", eventsReadOptions{since: at("10:03"), until: at("10:03")}, positions(4)},
		{"since before the log, until after it", eventsReadOptions{since: at("09:00"), until: at("12:00")}, positions(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)},
		{"user in a window", eventsReadOptions{user: "alice", since: at("10:02"), until: at("10:07")}, positions(4, 6, 8)},
		{"user until a position", eventsReadOptions{user: "alice", until: "6"}, positions(1, 2, 4, 6)},
		{"user and type", eventsReadOptions{user: "alice", types: []string{domain.TypeMessagePosted, domain.TypeNotificationSent}}, positions(4, 6, 12)},
		{"user and stream", eventsReadOptions{user: "alice", stream: "chat-general"}, positions(2, 4, 10)},
		{"user and from", eventsReadOptions{user: "alice", from: "5"}, positions(6, 8, 10, 11, 12)},
		{"user and correlation", eventsReadOptions{user: "ai-assistant", correlation: l.ask}, positions(5)},
		{"user and someone else's correlation", eventsReadOptions{user: "bob", correlation: l.ask}, nil},
		{"correlation until a position", eventsReadOptions{correlation: l.ask, until: "4"}, positions(4)},
		{"correlation since a time", eventsReadOptions{correlation: l.ask, since: at("10:04")}, positions(5)},
		{"correlation and type", eventsReadOptions{correlation: l.bye, types: []string{domain.TypePresenceLeft}}, positions(11)},
		{"stream, from and until", eventsReadOptions{stream: "presence-alice", from: "2", until: "11"}, positions(11)},
		{"type and since", eventsReadOptions{types: []string{domain.TypeAppStatusChanged}, since: at("10:06")}, positions(7, 8)},
		{"everything at once", eventsReadOptions{user: "alice", correlation: l.bye, stream: "presence-alice", types: []string{domain.TypePresenceLeft}, from: "2", since: at("10:00"), until: "12"}, positions(11)},
	}
	for _, c := range cases {
		for _, format := range []string{"jsonl", "table"} {
			c.opts.format = format
			if format == "table" {
				var out bytes.Buffer
				o := c.opts
				o.storage = app.Storage{DataDir: l.dir, EventStore: "sqlite"}
				o.userSet, o.correlationSet = o.user != "", o.correlation != ""
				if err := runEventsRead(context.Background(), &out, o); err != nil {
					t.Fatalf("%s (table): %v", c.name, err)
				}
				rows := 0
				if s := strings.TrimSpace(out.String()); s != "" {
					rows = len(strings.Split(s, "\n")) - 1 // the header
				}
				if rows != len(c.want) {
					t.Errorf("%s (table): %d rows, want %d:\n%s", c.name, rows, len(c.want), out.String())
				}
				continue
			}
			got, err := readPositions(t, context.Background(), l.dir, c.opts)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: positions %v, want %v", c.name, got, c.want)
			}
		}
	}
}

// The auditor's session of the README: what alice did in a window, then
// what one of those events caused, found through its correlation id; the
// reply points back at the message by its causation id.
func TestEventsReadAuditorSession(t *testing.T) {
	t.Parallel()
	l := writeAuditLog(t)
	storage := app.Storage{DataDir: l.dir, EventStore: "sqlite"}
	var out bytes.Buffer
	if err := runEventsRead(context.Background(), &out, eventsReadOptions{storage: storage, format: "jsonl", user: "alice", userSet: true, since: at("10:03"), until: at("10:03")}); err != nil {
		t.Fatal(err)
	}
	did := readLines(t, out.String())
	if len(did) != 1 || did[0].Type != domain.TypeMessagePosted {
		t.Fatalf("alice at 10:03: %+v", did)
	}
	var meta domain.Metadata
	if err := json.Unmarshal(did[0].Metadata, &meta); err != nil || meta.CorrelationID == "" {
		t.Fatalf("metadata %s: %v", did[0].Metadata, err)
	}
	out.Reset()
	if err := runEventsRead(context.Background(), &out, eventsReadOptions{storage: storage, format: "jsonl", correlation: meta.CorrelationID, correlationSet: true}); err != nil {
		t.Fatal(err)
	}
	caused := readLines(t, out.String())
	if len(caused) != 2 || caused[0].Position != did[0].Position {
		t.Fatalf("caused by %s: %+v", meta.CorrelationID, caused)
	}
	var reply domain.Metadata
	var msg domain.MessagePosted
	_ = json.Unmarshal(caused[1].Metadata, &reply)
	_ = json.Unmarshal(did[0].Data, &msg)
	if reply.Command != "ai_reply" || reply.CausationID != msg.ID || reply.UserID != "ai-assistant" {
		t.Fatalf("the reply's metadata %s does not point back at message %s", caused[1].Metadata, msg.ID)
	}
}

func TestEventsReadBadFilters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name string
		opts eventsReadOptions
		want string
	}{
		{"since not a time", eventsReadOptions{since: "10:00"}, "--since"},
		{"since a position", eventsReadOptions{since: "12"}, "--since"},
		{"until neither", eventsReadOptions{until: "soon"}, "--until"},
		{"until a negative position", eventsReadOptions{until: "-1"}, "--until"},
		{"since after until", eventsReadOptions{since: at("11:00"), until: at("10:00")}, "after --until"},
		{"empty user", eventsReadOptions{userSet: true}, "--user needs an id"},
		{"empty correlation", eventsReadOptions{correlationSet: true}, "--correlation needs an id"},
	}
	for _, c := range cases {
		c.opts.storage = app.Storage{DataDir: dir, EventStore: "sqlite"}
		c.opts.format = "jsonl"
		err := runEventsRead(context.Background(), &bytes.Buffer{}, c.opts)
		if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want INVALID_PAYLOAD naming %s", c.name, err, c.want)
		}
	}
}

// --follow with --until: the filters apply to what arrives live, and the
// follow ends by itself once the log passes the bound.
func TestEventsReadFollowWithFilters(t *testing.T) {
	t.Parallel()
	t.Run("until a position the log reaches later", func(t *testing.T) {
		t.Parallel()
		l := writeAuditLog(t)
		store, err := sqlstore.OpenSQLite(context.Background(), l.dir, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out := &syncbuf.Buffer{}
		done := make(chan error, 1)
		go func() {
			done <- runEventsRead(ctx, out, eventsReadOptions{storage: app.Storage{DataDir: l.dir, EventStore: "sqlite"}, format: "jsonl",
				follow: true, user: "alice", userSet: true, correlation: "live", correlationSet: true, until: "16"})
		}()
		// 14 matches, 15 is alice's without the correlation, 16 the
		// correlation's but bob's, 17 would match but lies past --until.
		for _, m := range []string{`{"userId":"alice","correlationId":"live"}`, `{"userId":"alice","correlationId":"other"}`, `{"userId":"bob","correlationId":"live"}`, `{"userId":"alice","correlationId":"live"}`} {
			if _, err := store.Append(context.Background(), "x-live", eventstore.Any, eventstore.EventData{Type: "Noted", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(m)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("follow until 16 returned %v", err)
		}
		var got []uint64
		for _, line := range readLines(t, out.String()) {
			got = append(got, line.Position)
		}
		if !slices.Equal(got, positions(14)) {
			t.Fatalf("followed %v, want [14]", got)
		}
	})
	t.Run("until a time already past", func(t *testing.T) {
		t.Parallel()
		l := writeAuditLog(t)
		// The moment plus the grace lies in the past: the catch-up is all.
		got, err := readPositions(t, context.Background(), l.dir, eventsReadOptions{follow: true, user: "alice", until: at("10:05")})
		if err != nil || !slices.Equal(got, positions(1, 2, 4, 6)) {
			t.Fatalf("follow until 10:05: %v %v", got, err)
		}
	})
	t.Run("until a position already passed", func(t *testing.T) {
		t.Parallel()
		l := writeAuditLog(t)
		got, err := readPositions(t, context.Background(), l.dir, eventsReadOptions{follow: true, correlation: l.bye, until: "13"})
		if err != nil || !slices.Equal(got, positions(10, 11)) {
			t.Fatalf("follow until 13: %v %v", got, err)
		}
	})
}
