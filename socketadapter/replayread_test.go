package socketadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/sqlstore"
)

// Sessions that recover at once, each from its own offset and in its own
// rooms, get from the shared read exactly what each would have got on its
// own; one that missed too many is refused without holding the others.
func TestRecoveringSessionsShareOneRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlstore.OpenSQLite(ctx, t.TempDir(), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	at := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	var positions []eventstore.Position
	add := func(e domain.Event) {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		res, err := store.Append(ctx, "s", eventstore.Any, eventstore.EventData{Type: e.EventType(), Data: data})
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.LastPosition())
	}
	const rooms = 5
	for i := range 300 {
		if i%50 == 7 {
			add(domain.SystemAlertBroadcast{SchemaVersion: 1, Title: fmt.Sprint("alert ", i), Message: "m", Severity: "info", By: "admin", At: at})
			continue
		}
		add(domain.MessagePosted{SchemaVersion: 1, ID: fmt.Sprint("m", i), RoomName: fmt.Sprint("room", i%rooms), UserID: "u", UserName: "U",
			Message: fmt.Sprint("message ", i), MessageType: domain.MessageText, At: at})
	}
	head := positions[len(positions)-1]

	srv := &Server{cfg: Config{RecoveryMaxEvents: 100, CommandTimeout: time.Minute}, feed: store, ctx: ctx}
	// alone is what a session gets reading the log on its own.
	alone := func(sid string, rs map[socket.Room]bool, from eventstore.Position) ([]string, error) {
		recs, err := store.ReadAll(ctx, eventstore.ReadAllOptions{From: from})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, r := range skipThrough(recs, from) {
			e, err := domain.Decode(r.Type, r.Data)
			if err != nil {
				return nil, err
			}
			for _, dl := range deliveries(e) {
				if dl.reaches(sid, rs) {
					out = append(out, dl.event+string(dl.payload))
				}
			}
		}
		if len(out) > srv.cfg.RecoveryMaxEvents {
			return nil, errTooFarBehind
		}
		return out, nil
	}
	type session struct {
		sid   string
		rooms map[socket.Room]bool
		from  eventstore.Position
	}
	var sessions []session
	for i := range 40 {
		rs := map[socket.Room]bool{clientRoom(fmt.Sprint("room", i%rooms)): true}
		if i%3 == 0 {
			rs[clientRoom(fmt.Sprint("room", (i+1)%rooms))] = true
		}
		from := positions[200+i] // each missed the last 60 to 100 events
		if i == 39 {
			from = eventstore.Position{} // missed everything: more than 100 deliveries
		}
		sessions = append(sessions, session{sid: fmt.Sprint("sid", i), rooms: rs, from: from})
	}
	r := newReplayReader(srv)
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want, wantErr := alone(s.sid, s.rooms, s.from)
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			got, err := r.missed(rctx, s.sid, s.rooms, s.from, head)
			if wantErr != nil || err != nil {
				if !errors.Is(err, errTooFarBehind) || !errors.Is(wantErr, errTooFarBehind) {
					t.Errorf("%s: shared read %v, alone %v; want both too far behind", s.sid, err, wantErr)
				}
				return
			}
			var texts []string
			for i, m := range got {
				texts = append(texts, m.event+string(m.payload))
				if i > 0 && !got[i-1].position.Less(m.position) {
					t.Errorf("%s: deliveries out of log order at %d", s.sid, i)
				}
			}
			if !slices.Equal(texts, want) {
				t.Errorf("%s: the shared read gave %d deliveries, alone %d (or others)", s.sid, len(texts), len(want))
			}
			if len(want) == 0 {
				t.Errorf("%s: nothing missed: the test proves nothing", s.sid)
			}
		}()
	}
	wg.Wait()
}
