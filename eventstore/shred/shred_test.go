package shred_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/eventstore/shred"
	"github.com/auraos/realtime/eventstore/sqlstore"
	"github.com/auraos/realtime/eventstore/storetest"
	"github.com/auraos/realtime/schema/schematest"
)

// fixture is a SQLite event store and a read database with the key table.
type fixture struct {
	dir   string
	raw   *sqlstore.Store
	keyDB *bun.DB
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	dir := t.TempDir()
	raw, err := sqlstore.OpenSQLite(context.Background(), dir, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return fixture{dir: dir, raw: raw, keyDB: schematest.OpenReadDB(t, "sqlite").Writer}
}

// open wraps the fixture's raw store with a key table over its read
// database, under kek (nil for none).
func (f fixture) open(t testing.TB, kek []byte) *shred.Store {
	t.Helper()
	keys, err := shred.OpenSQLKeys(context.Background(), f.keyDB, f.keyDB, kek)
	if err != nil {
		t.Fatal(err)
	}
	s, err := shred.New(context.Background(), f.raw, keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventstore.Store { return newFixture(t).open(t, nil) })
}

var at = time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)

func profile(uid string) domain.UserProfile {
	return domain.UserProfile{UID: uid, Email: uid + "@secret.example", DisplayName: "Name of " + uid, PhotoURL: "https://img.example/" + uid}
}

// personalEvents are one event of each type with personal data about uid,
// and the texts only they contain.
func personalEvents(t *testing.T, uid string) ([]eventstore.EventData, []string) {
	t.Helper()
	avatar := "https://img.example/" + uid
	evs := []domain.Event{
		domain.PresenceJoined{SchemaVersion: 1, UserID: uid, SessionID: "s-" + uid, NodeID: "n", Profile: profile(uid), Status: "online", At: at},
		domain.ChatMemberJoined{SchemaVersion: 1, RoomName: "lobby", UserID: uid, SessionID: "s-" + uid, NodeID: "n", Profile: profile(uid), At: at},
		domain.MessagePosted{SchemaVersion: 1, ID: eventstore.NewID(), RoomName: "lobby", UserID: uid, UserName: "Name of " + uid, UserAvatar: &avatar,
			Message: "the words of " + uid, MessageType: domain.MessageText, At: at},
		domain.NotificationSent{SchemaVersion: 1, To: "someone", From: uid, Title: "title by " + uid, Message: "note by " + uid, Type: "info",
			Data: json.RawMessage(`{"secret":"data of ` + uid + `"}`), At: at},
		domain.ChatMemberLeft{SchemaVersion: 1, RoomName: "lobby", UserID: uid, SessionID: "s-" + uid, NodeID: "n", Profile: profile(uid), Reason: "leave", At: at},
	}
	return toData(t, evs...), []string{uid + "@secret.example", "Name of " + uid, "img.example/" + uid, "the words of " + uid, "title by " + uid, "note by " + uid, "data of " + uid}
}

func toData(t *testing.T, evs ...domain.Event) []eventstore.EventData {
	t.Helper()
	out := make([]eventstore.EventData, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = eventstore.EventData{Type: e.EventType(), Data: b}
	}
	return out
}

func appendAll(t *testing.T, s eventstore.Store, evs []eventstore.EventData) {
	t.Helper()
	for _, e := range evs {
		if _, err := s.Append(context.Background(), "stream-"+e.Type, eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, s eventstore.Store) []eventstore.RecordedEvent {
	t.Helper()
	evs, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// decoded decodes every event read through s.
func decoded(t *testing.T, evs []eventstore.RecordedEvent) []domain.Event {
	t.Helper()
	out := make([]domain.Event, len(evs))
	for i, e := range evs {
		d, err := domain.Decode(e.Type, e.Data)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = d
	}
	return out
}

// assertAbsent fails when any of texts appears in any event's data.
func assertAbsent(t *testing.T, what string, evs []eventstore.RecordedEvent, texts []string) {
	t.Helper()
	for _, e := range evs {
		for _, s := range texts {
			if bytes.Contains(e.Data, []byte(s)) {
				t.Errorf("%s: %s at %v holds %q: %s", what, e.Type, e.Position, s, e.Data)
			}
		}
	}
}

func TestEveryReadPathDecryptsAndTheStoreHoldsCiphertext(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, nil)
	evs, texts := personalEvents(t, "alice")
	appendAll(t, s, evs)

	assertAbsent(t, "raw log", readAll(t, f.raw), texts)
	want := decodedData(t, evs)

	all := readAll(t, s)
	if got := decoded(t, all); !equalJSON(t, got, want) {
		t.Fatalf("ReadAll gave %v, want %v", got, want)
	}
	var streamed []eventstore.RecordedEvent
	for _, e := range evs {
		got, err := s.ReadStream(context.Background(), "stream-"+e.Type, eventstore.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		streamed = append(streamed, got...)
	}
	if got := decoded(t, streamed); !equalJSON(t, got, want) {
		t.Fatalf("ReadStream gave %v, want %v", got, want)
	}
	sub, err := s.Subscribe(context.Background(), eventstore.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var live []eventstore.RecordedEvent
	for len(live) < len(evs) {
		b, err := sub.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, b.Events...)
	}
	if got := decoded(t, live); !equalJSON(t, got, want) {
		t.Fatalf("Subscribe gave %v, want %v", got, want)
	}
}

// decodedData decodes events as they were given to Append.
func decodedData(t *testing.T, evs []eventstore.EventData) []domain.Event {
	t.Helper()
	recorded := make([]eventstore.RecordedEvent, len(evs))
	for i, e := range evs {
		recorded[i] = eventstore.RecordedEvent{Type: e.Type, Data: e.Data}
	}
	return decoded(t, recorded)
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

func TestForgetShowsPlaceholdersAndLeavesOthersAlone(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, nil)
	aliceEvs, aliceTexts := personalEvents(t, "alice")
	bobEvs, _ := personalEvents(t, "bob")
	// carol wrote before encryption existed: straight to the raw store.
	carolEvs, carolTexts := personalEvents(t, "carol")
	appendAll(t, f.raw, carolEvs)
	appendAll(t, s, aliceEvs)
	appendAll(t, s, bobEvs)

	for _, uid := range []string{"alice", "carol"} {
		if _, err := s.Forget(context.Background(), uid); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh process sees the same, from the key table alone.
	for name, store := range map[string]*shred.Store{"this process": s, "another process": f.open(t, nil)} {
		all := readAll(t, store)
		assertAbsent(t, name, all, append(aliceTexts, carolTexts...))
		for _, e := range decoded(t, all) {
			checkPlaceholders(t, name, e, map[string]bool{"alice": true, "carol": true})
		}
	}
	// The raw log still holds carol's clear bytes: they predate encryption.
	if subject, state := shred.Inspect(domain.TypeMessagePosted, findRaw(t, f.raw, domain.TypeMessagePosted, "carol")); subject != "carol" || state != shred.Clear {
		t.Errorf("Inspect(carol's message) = %q, %v; want carol, Clear", subject, state)
	}
	if subject, state := shred.Inspect(domain.TypeMessagePosted, findRaw(t, f.raw, domain.TypeMessagePosted, "alice")); subject != "alice" || state != shred.Encrypted {
		t.Errorf("Inspect(alice's message) = %q, %v; want alice, Encrypted", subject, state)
	}

	// alice comes back: a new person, with a new key, readable.
	again := toData(t, domain.MessagePosted{SchemaVersion: 1, ID: eventstore.NewID(), RoomName: "lobby", UserID: "alice", UserName: "Alice again",
		Message: "I am new", MessageType: domain.MessageText, At: at})
	appendAll(t, s, again)
	all := decoded(t, readAll(t, f.open(t, nil)))
	last := all[len(all)-1].(domain.MessagePosted)
	if last.Message != "I am new" || last.UserName != "Alice again" {
		t.Errorf("alice's new message reads %+v", last)
	}
}

// findRaw returns the raw data of the first event of type typ about uid.
func findRaw(t *testing.T, raw eventstore.Store, typ, uid string) []byte {
	t.Helper()
	for _, e := range readAll(t, raw) {
		if subject, _ := shred.Inspect(e.Type, e.Data); e.Type == typ && subject == uid {
			return e.Data
		}
	}
	t.Fatalf("no %s about %s", typ, uid)
	return nil
}

// checkPlaceholders checks e shows every personal field of forgotten users
// as a placeholder and everyone else's as written.
func checkPlaceholders(t *testing.T, where string, e domain.Event, forgotten map[string]bool) {
	t.Helper()
	erasedProfile := func(uid string, p domain.UserProfile) {
		t.Helper()
		want := profile(uid)
		if forgotten[uid] {
			want = domain.UserProfile{UID: uid, DisplayName: domain.PlaceholderName}
		}
		if p != want {
			t.Errorf("%s: %s of %s has profile %+v, want %+v", where, e.EventType(), uid, p, want)
		}
	}
	switch e := e.(type) {
	case domain.PresenceJoined:
		erasedProfile(e.UserID, e.Profile)
	case domain.ChatMemberJoined:
		erasedProfile(e.UserID, e.Profile)
	case domain.ChatMemberLeft:
		erasedProfile(e.UserID, e.Profile)
	case domain.MessagePosted:
		if forgotten[e.UserID] != (e.Message == domain.PlaceholderText && e.UserName == domain.PlaceholderName && e.UserAvatar == nil) {
			t.Errorf("%s: message of %s reads %+v", where, e.UserID, e)
		}
	case domain.NotificationSent:
		erased := e.Title == domain.PlaceholderText && e.Message == domain.PlaceholderText && string(e.Data) == "null"
		if forgotten[e.From] != erased {
			t.Errorf("%s: notification from %s reads %+v", where, e.From, e)
		}
	}
}

func TestAnotherProcessLearnsOfAForgetFromTheEvent(t *testing.T) {
	f := newFixture(t)
	server := f.open(t, nil)
	evs, texts := personalEvents(t, "alice")
	appendAll(t, server, evs)
	readAll(t, server) // the server's cache now holds alice's key

	cli := f.open(t, nil)
	if _, err := cli.Forget(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	appendAll(t, cli, toData(t, domain.UserForgotten{SchemaVersion: 1, UserID: "alice", Reason: "asked", By: "ops", At: at}))

	first := readAll(t, server) // reads the UserForgotten last: drops the cached key
	if !bytes.Contains(first[0].Data, []byte("alice@secret.example")) {
		t.Fatalf("before reading the UserForgotten the cached key still opens the event: %s", first[0].Data)
	}
	assertAbsent(t, "after the UserForgotten was read", readAll(t, server), texts)
}

func TestKeyEncryptionKey(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{8}, 32)
	ctx := context.Background()

	wrapped := newFixture(t)
	s := wrapped.open(t, kek)
	evs, _ := personalEvents(t, "alice")
	appendAll(t, s, evs)
	var stored []byte
	if err := wrapped.keyDB.NewRaw("SELECT key FROM user_keys").Scan(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) == 32 {
		t.Errorf("the key is stored unwrapped (%d bytes)", len(stored))
	}
	if got := decoded(t, readAll(t, wrapped.open(t, kek)))[0].(domain.PresenceJoined).Profile; got != profile("alice") {
		t.Errorf("under the KEK the profile reads %+v", got)
	}

	plain := newFixture(t)
	appendAll(t, plain.open(t, nil), evs)

	for _, tc := range []struct {
		name string
		db   *bun.DB
		kek  []byte
		want string
	}{
		{"wrong KEK", wrapped.keyDB, other, "not the key that wrapped"},
		{"no KEK for wrapped keys", wrapped.keyDB, nil, "give it with --key-encryption-key"},
		{"KEK for unwrapped keys", plain.keyDB, kek, "stored unwrapped"},
		{"short KEK", plain.keyDB, kek[:16], "must be 32 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shred.OpenSQLKeys(ctx, tc.db, tc.db, tc.kek)
			if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("OpenSQLKeys: %v; want EINVALID saying %q", err, tc.want)
			}
		})
	}
}

func TestParseKEK(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{base64.StdEncoding.EncodeToString(key), true},
		{base64.RawURLEncoding.EncodeToString(key), true},
		{" " + base64.StdEncoding.EncodeToString(key) + "\n", true},
		{base64.StdEncoding.EncodeToString(key[:31]), false},
		{"not base64!", false},
		{"", false},
	} {
		got, err := shred.ParseKEK(tc.in)
		if tc.ok != (err == nil) || (tc.ok && !bytes.Equal(got, key)) {
			t.Errorf("ParseKEK(%q) = %x, %v", tc.in, got, err)
		}
		if !tc.ok && domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("ParseKEK(%q): %v is not EINVALID", tc.in, err)
		}
	}
}

func TestExportImportNeverRestoresAForgottenKey(t *testing.T) {
	ctx := context.Background()
	src := newFixture(t)
	s := src.open(t, nil)
	for _, uid := range []string{"alice", "bob"} {
		evs, _ := personalEvents(t, uid)
		appendAll(t, s, evs)
	}
	keys, err := shred.OpenSQLKeys(ctx, src.keyDB, src.keyDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	backup, err := keys.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(backup) != 2 {
		t.Fatalf("exported %d keys, want 2", len(backup))
	}
	if _, err := s.Forget(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	res, err := keys.Import(ctx, backup)
	if err != nil {
		t.Fatal(err)
	}
	if want := (shred.ImportResult{AlreadyPresent: 1, SkippedForgotten: 1}); res != want {
		t.Errorf("import into the source = %+v, want %+v", res, want)
	}
	if _, _, found, _ := keys.CurrentKey(ctx, "alice"); found {
		t.Error("the import restored alice's key")
	}

	// Into an empty key table everything is stored; under another KEK
	// nothing is.
	dst := newFixture(t)
	dstKeys, err := shred.OpenSQLKeys(ctx, dst.keyDB, dst.keyDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := dstKeys.Import(ctx, backup); err != nil || res.Stored != 2 {
		t.Errorf("import into an empty table = %+v, %v", res, err)
	}
	other := newFixture(t).keyDB
	wrappedKeys, err := shred.OpenSQLKeys(ctx, other, other, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrappedKeys.Import(ctx, backup); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("import of unwrapped keys under a KEK: %v, want EINVALID", err)
	}
}

func TestAppendInClearStoresClearAndStillReads(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, nil)
	s.AppendInClear()
	evs, texts := personalEvents(t, "alice")
	appendAll(t, s, evs)
	raw := readAll(t, f.raw)
	for _, want := range texts {
		found := false
		for _, e := range raw {
			found = found || bytes.Contains(e.Data, []byte(want))
		}
		if !found {
			t.Errorf("the raw log lacks %q: appends were encrypted", want)
		}
	}
	if got := decoded(t, readAll(t, s)); !equalJSON(t, got, decodedData(t, evs)) {
		t.Errorf("reads give %v", got)
	}
}

// countingKeys counts the writes of new keys; the first waits for release,
// so that the users who come meanwhile queue behind it.
type countingKeys struct {
	*shred.SQLKeys
	entered chan struct{}
	release chan struct{}
	writes  atomic.Int32
}

func (k *countingKeys) AddKeys(ctx context.Context, keys []shred.NewKey) error {
	if k.writes.Add(1) == 1 {
		close(k.entered)
		<-k.release
	}
	return k.SQLKeys.AddKeys(ctx, keys)
}

// Many new users at once get one key each, created in a few writes of the
// key table (not one each), and their events read back decrypted.
func TestNewUsersAtOnceShareKeyWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	sqlKeys, err := shred.OpenSQLKeys(ctx, f.keyDB, f.keyDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys := &countingKeys{SQLKeys: sqlKeys, entered: make(chan struct{}), release: make(chan struct{})}
	s, err := shred.New(ctx, f.raw, keys)
	if err != nil {
		t.Fatal(err)
	}
	join := func(uid string, session int) error {
		e := domain.PresenceJoined{SchemaVersion: 1, UserID: uid, SessionID: fmt.Sprintf("s-%s-%d", uid, session), NodeID: "n", Profile: profile(uid), Status: "online", At: at}
		_, err := s.Append(ctx, "presence-"+uid, eventstore.Any, toData(t, e)...)
		return err
	}
	first := make(chan error, 1)
	go func() { first <- join("first", 0) }()
	<-keys.entered // the first user's key is being written
	const users, sessions = 40, 3
	var wg sync.WaitGroup
	errs := make(chan error, users*sessions)
	for u := range users {
		for n := range sessions { // the same user from several sessions at once
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- join(fmt.Sprintf("user%02d", u), n)
			}()
		}
	}
	for deadline := time.Now().Add(time.Minute); shred.QueuedKeyCreations(s) < users; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d users queued for a key", shred.QueuedKeyCreations(s), users)
		}
		time.Sleep(time.Millisecond)
	}
	close(keys.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if w := keys.writes.Load(); w >= users {
		t.Fatalf("%d writes of the key table for %d new users; want them batched", w, users+1)
	}
	exported, err := sqlKeys.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	perUser := map[string]int{}
	for _, k := range exported {
		perUser[k.UserID]++
	}
	if len(perUser) != users+1 {
		t.Fatalf("%d users have keys, want %d", len(perUser), users+1)
	}
	for u, n := range perUser {
		if n != 1 {
			t.Fatalf("%s has %d keys, want one", u, n)
		}
	}
	for _, e := range decoded(t, readAll(t, s)) {
		j, ok := e.(domain.PresenceJoined)
		if !ok || j.Profile != profile(j.UserID) {
			t.Fatalf("read back %#v; want the join with %s's profile decrypted", e, j.UserID)
		}
	}
}

// Subscribers of one Store share the decryption of the events they all
// read, and no reading of a forgotten user's event outlives the forget:
// not one remembered from before it, not one decrypted while it happened.
func TestRecentReadsAreSharedAndNeverOutliveAForget(t *testing.T) {
	f := newFixture(t)
	s := f.open(t, nil)
	evs, texts := personalEvents(t, "alice")
	appendAll(t, s, evs)
	bobEvs, _ := personalEvents(t, "bob")
	appendAll(t, s, bobEvs)

	next := func() eventstore.Batch {
		t.Helper()
		sub, err := s.Subscribe(context.Background(), eventstore.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		b, err := sub.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first, second := next(), next()
	if len(first.Events) != 2*len(evs) || len(second.Events) != len(first.Events) {
		t.Fatalf("read %d and %d events, want %d", len(first.Events), len(second.Events), 2*len(evs))
	}
	for i := range first.Events {
		a, b := first.Events[i].Data, second.Events[i].Data
		if !bytes.Equal(a, b) {
			t.Fatalf("event %d reads %s, then %s", i, a, b)
		}
		if bytes.Contains(a, []byte("the words of alice")) && &a[0] != &b[0] {
			t.Errorf("the second subscriber decrypted alice's message again instead of sharing the first one's reading")
		}
	}
	if !bytes.Contains(second.Events[2].Data, []byte("the words of alice")) {
		t.Fatalf("alice's message reads %s before the forget", second.Events[2].Data)
	}

	// Readers run while alice is forgotten: a read that begins after the
	// forget returned never shows her data.
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				after := done.Load()
				got, err := s.ReadAll(context.Background(), eventstore.ReadAllOptions{})
				if err != nil {
					errs <- err.Error()
					return
				}
				if after {
					for _, e := range got {
						for _, text := range texts {
							if bytes.Contains(e.Data, []byte(text)) {
								errs <- "a read begun after the forget shows " + text
								return
							}
						}
					}
				}
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if _, err := s.Forget(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	third := next()
	assertAbsent(t, "a subscription after the forget", third.Events, texts)
	if !bytes.Contains(third.Events[len(evs)+2].Data, []byte("the words of bob")) {
		t.Errorf("bob's message reads %s after alice's forget", third.Events[len(evs)+2].Data)
	}
}

// A batch that holds a UserForgotten and, after it, a clear event of the
// same user shows that event erased, even when the reading of the events
// before it was remembered.
func TestAForgetInABatchErasesWhatFollowsIt(t *testing.T) {
	f := newFixture(t)
	server := f.open(t, nil)
	evs, _ := personalEvents(t, "alice")
	appendAll(t, server, evs)
	readAll(t, server) // remembered

	cli := f.open(t, nil)
	if _, err := cli.Forget(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	appendAll(t, cli, toData(t, domain.UserForgotten{SchemaVersion: 1, UserID: "alice", Reason: "asked", By: "ops", At: at}))
	late := toData(t, domain.MessagePosted{SchemaVersion: 1, ID: eventstore.NewID(), RoomName: "lobby", UserID: "alice", UserName: "Name of alice",
		Message: "written in clear after the forget", MessageType: domain.MessageText, At: at})
	appendAll(t, f.raw, late)

	all := readAll(t, server)
	if last := all[len(all)-1]; bytes.Contains(last.Data, []byte("written in clear")) {
		t.Errorf("the clear event after the UserForgotten reads %s", last.Data)
	}
}

// What this process appends is read back without decrypting it, as the
// bytes another process decrypts from the log; a forget between the append
// and the reading still erases it.
func TestAppendedEventsReadWithoutDecrypting(t *testing.T) {
	f := newFixture(t)
	writer, other := f.open(t, nil), f.open(t, nil)
	evs, _ := personalEvents(t, "carol")
	for i := range evs {
		evs[i].ID = eventstore.NewID()
	}
	appendAll(t, writer, evs[:2])
	ctx := context.Background()
	for _, e := range evs[2:] {
		if _, err := writer.Submit(ctx, "stream-"+e.Type, eventstore.Any, e).Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mine := readAll(t, writer)
	if n := shred.Decryptions(writer); n != 0 {
		t.Fatalf("the writer decrypted %d of its own events", n)
	}
	theirs := readAll(t, other)
	if shred.Decryptions(other) == 0 || len(theirs) != len(mine) || len(mine) != len(evs) {
		t.Fatalf("another store decrypted %d events; read %d and %d events, want %d", shred.Decryptions(other), len(mine), len(theirs), len(evs))
	}
	for i := range mine {
		if !bytes.Equal(mine[i].Data, theirs[i].Data) || !bytes.Equal(mine[i].Data, evs[i].Data) {
			t.Fatalf("event %d: the writer reads %s, another store %s, appended %s", i, mine[i].Data, theirs[i].Data, evs[i].Data)
		}
	}
	if _, err := writer.Forget(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	_, texts := personalEvents(t, "carol")
	assertAbsent(t, "the writer after the forget", readAll(t, writer), texts)
}
