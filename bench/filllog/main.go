// Command filllog fills an empty event store with a chat log shaped like
// production traffic, for the whole-process rebuild benchmark: every user
// comes online and joins a room, then messages are posted across the rooms,
// with an app status change now and then. The events are what the server
// itself appends (the same domain types and streams), written in large
// batches by several writers so that filling a million events takes
// seconds, not the hours a socket-driven fill would.
//
// go run ./bench/filllog -data-dir DIR [-event-store postgres://…] [-events 100000]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

func main() {
	var o fill
	var dataDir, eventStore string
	flag.StringVar(&dataDir, "data-dir", "", "data directory of the embedded SQLite event store")
	flag.StringVar(&eventStore, "event-store", "sqlite", `"sqlite" (in -data-dir) or a postgres:// URL`)
	flag.IntVar(&o.events, "events", 100_000, "events to append in all")
	flag.IntVar(&o.users, "users", 1_000, "users who come online and join a room")
	flag.IntVar(&o.rooms, "rooms", 100, "chat rooms")
	flag.IntVar(&o.writers, "writers", 8, "concurrent writers")
	flag.Parse()
	if err := run(context.Background(), dataDir, eventStore, o); err != nil {
		fmt.Fprintln(os.Stderr, "filllog:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dataDir, eventStore string, o fill) error {
	var s *sqlstore.Store
	var err error
	switch {
	case eventStore == "sqlite" && dataDir != "":
		s, err = sqlstore.OpenSQLite(ctx, dataDir, sqlstore.Options{})
	case eventStore != "sqlite":
		s, err = sqlstore.OpenPostgres(ctx, eventStore, sqlstore.Options{})
	default:
		return fmt.Errorf("give -data-dir or a postgres:// -event-store")
	}
	if err != nil {
		return err
	}
	defer s.Close()
	if head, err := s.Head(ctx); err != nil {
		return err
	} else if !head.IsZero() {
		return fmt.Errorf("the event store is not empty (head %s)", head)
	}
	started := time.Now()
	if err := o.appendAll(ctx, s); err != nil {
		return err
	}
	fmt.Printf("appended %d events in %s\n", o.events, time.Since(started).Round(time.Millisecond))
	return nil
}

// fill says what log to write.
type fill struct {
	events, users, rooms, writers int
}

// batchSize is the events of one append: large enough that a fill is
// bounded by inserts, not commits.
const batchSize = 500

// at is the time of the first event; each event is a millisecond later.
var at = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// appendAll writes the presence and joins of every user first, in order,
// then the messages from several writers, one room per writer at a time.
func (o fill) appendAll(ctx context.Context, s *sqlstore.Store) error {
	joins := min(o.users, o.events/2)
	for u := 0; u < joins; u++ {
		uid, sid := fmt.Sprintf("user-%d", u), fmt.Sprintf("session-%d", u)
		profile := domain.UserProfile{UID: uid, DisplayName: fmt.Sprintf("User %d", u), Email: uid + "@example.com"}
		t := at.Add(time.Duration(u) * time.Millisecond)
		if _, err := s.Append(ctx, domain.PresenceStream(uid), eventstore.Any,
			event(domain.PresenceJoined{SchemaVersion: 1, UserID: uid, SessionID: sid, NodeID: "bench", Profile: profile, Status: "online", At: t})); err != nil {
			return err
		}
		room := fmt.Sprintf("room-%d", u%o.rooms)
		if _, err := s.Append(ctx, domain.ChatStream(room), eventstore.Any,
			event(domain.ChatMemberJoined{SchemaVersion: 1, RoomName: room, UserID: uid, SessionID: sid, NodeID: "bench", Profile: profile, At: t})); err != nil {
			return err
		}
	}
	messages := o.events - 2*joins
	batches := (messages + batchSize - 1) / batchSize
	next := make(chan int)
	errs := make(chan error, max(o.writers, 1))
	var wg sync.WaitGroup
	for range max(o.writers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				if err := o.appendBatch(ctx, s, b, min(batchSize, messages-b*batchSize)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for b := 0; b < batches; b++ {
		select {
		case next <- b:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil && len(errs) > 0 {
		err = <-errs
	}
	return err
}

// appendBatch appends n messages to one room, the tenth of them with an app
// status change to the app stream instead.
func (o fill) appendBatch(ctx context.Context, s *sqlstore.Store, b, n int) error {
	room, app := fmt.Sprintf("room-%d", b%o.rooms), fmt.Sprintf("app-%d", b%20)
	var chat, apps []eventstore.EventData
	for i := 0; i < n; i++ {
		seq := b*batchSize + i
		t := at.Add(time.Duration(o.users+seq) * time.Millisecond)
		if seq%10 == 9 {
			apps = append(apps, event(domain.AppStatusChanged{SchemaVersion: 1, AppID: app, Status: []domain.AppStatus{domain.AppActive, domain.AppInactive}[seq%2], By: "user-0", At: t}))
			continue
		}
		u := seq % max(o.users, 1)
		chat = append(chat, event(domain.MessagePosted{
			SchemaVersion: 1, ID: eventstore.NewID(), RoomName: room, UserID: fmt.Sprintf("user-%d", u), UserName: fmt.Sprintf("User %d", u),
			Message: "A chat message of a typical length, with a few words in it.", MessageType: domain.MessageText, At: t,
		}))
	}
	if _, err := s.Append(ctx, domain.ChatStream(room), eventstore.Any, chat...); err != nil {
		return err
	}
	if len(apps) > 0 {
		if _, err := s.Append(ctx, domain.AppStream(app), eventstore.Any, apps...); err != nil {
			return err
		}
	}
	return nil
}

// event encodes a domain event as the commands do.
func event(e domain.Event) eventstore.EventData {
	data, err := json.Marshal(e)
	if err != nil {
		panic(err) // the domain types always encode
	}
	return eventstore.EventData{ID: eventstore.NewID(), Type: e.EventType(), Data: data}
}
