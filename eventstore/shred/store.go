// Package shred crypto-shreds personal data in the event log: a Store
// wraps any eventstore.Store, encrypts the personal fields of each event
// (domain.PersonalDataOf) at append under a data key of the user they are
// about, and decrypts them on every read. Forgetting a user deletes their
// keys: their fields then read as the domain's placeholders on every path,
// while the log itself, and so its hash chain, keeps the same bytes. Ids,
// room names, types, times and metadata stay in clear.
package shred

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
	"github.com/auraos/realtime/internal/recent"
)

// Keys is the key table a Store needs. Implementations return EUNAVAILABLE
// errors when their database cannot be reached.
type Keys interface {
	// Keys returns the data keys with the ids given that exist, by id; a
	// key that is gone (its user was forgotten) is absent.
	Keys(ctx context.Context, keyIDs []string) (map[string]StoredKey, error)
	// CurrentKeys returns the newest key of each of the users given that
	// has one, by user id; a user who has none (a new user, or one
	// forgotten since) is absent.
	CurrentKeys(ctx context.Context, userIDs []string) (map[string]CurrentKey, error)
	// AddKeys stores new keys, each of its user, in one write.
	AddKeys(ctx context.Context, keys []NewKey) error
	// Forget deletes every key of userID and records the tombstone; it
	// returns how many keys it deleted.
	Forget(ctx context.Context, userID string) (int, error)
	// Forgotten returns the users with a tombstone.
	Forgotten(ctx context.Context) ([]string, error)
}

// CurrentKey is the key a user's new events are encrypted under.
type CurrentKey struct {
	KeyID string
	Key   []byte
}

// NewKey is a data key created for a user, to be stored.
type NewKey struct {
	UserID string
	KeyID  string
	Key    []byte
}

// StoredKey is a data key and the user it belongs to.
type StoredKey struct {
	UserID string
	Key    []byte
}

// Store is an eventstore.Store that encrypts personal fields at append and
// decrypts them on every read. It keeps the keys it used in memory (one
// lookup per key, not per event) and drops a user's keys from that cache
// when it forgets them or reads their UserForgotten event, which is how
// other processes' caches learn of a forget made elsewhere: a projection
// runner of each server reads every UserForgotten. Errors are the inner
// store's, and EUNAVAILABLE for a key table that cannot be reached.
type Store struct {
	eventstore.Store
	keys Keys

	mu        sync.RWMutex
	byKey     map[string]*cachedKey // key id → key; aead nil: the key is gone
	current   map[string]string     // user id → key id of new appends
	forgotten map[string]bool       // users with a tombstone

	// Keys are created in batches, so that a storm of new users is a few
	// writes of the key table rather than one each: whoever holds the
	// token in lead creates every key asked for meanwhile.
	createMu sync.Mutex
	creating map[string]*keyCreation // user id → its key being created
	queued   []*keyCreation          // asked for, not yet in a batch
	lead     chan struct{}           // holds the token while nobody creates

	clearAppends bool // appends pass through unencrypted (AppendInClear)

	recent *recent.Cache[json.RawMessage] // what the last events read decrypted to; nil data: as stored

	decryptions atomic.Int64 // events decrypted on reading (their readings were not remembered)
}

// cachedKey is a data key ready to use.
type cachedKey struct {
	user string
	aead cipher.AEAD
}

// New wraps inner. It reads the tombstones once, so that a forgotten
// user's events written before encryption existed also read as erased, and
// returns the key table's error (EUNAVAILABLE) if it cannot.
func New(ctx context.Context, inner eventstore.Store, keys Keys) (*Store, error) {
	users, err := keys.Forgotten(ctx)
	if err != nil {
		return nil, err
	}
	s := &Store{Store: inner, keys: keys, byKey: map[string]*cachedKey{}, current: map[string]string{}, forgotten: map[string]bool{},
		creating: map[string]*keyCreation{}, lead: make(chan struct{}, 1), recent: recent.New[json.RawMessage](recentSize, recentBytes)}
	s.lead <- struct{}{}
	for _, u := range users {
		s.forgotten[u] = true
	}
	return s, nil
}

// AppendInClear makes s store the events it appends as they are, while
// reads still decrypt what was encrypted and erase what was forgotten: for
// servers that share a log but not a key table (EventStoreDB with a SQLite
// read database each), where one server's keys would be unknown to the
// others and their users would read as erased. Such events cannot be
// forgotten. Call it before s is used.
func (s *Store) AppendInClear() { s.clearAppends = true }

// Inner returns the store underneath, which holds the encrypted bytes (for
// exports of the raw log and counting what a forget erases).
func (s *Store) Inner() eventstore.Store { return s.Store }

// Forget deletes every key of userID, so that every field encrypted under
// them reads as its placeholder from now on in this process (other
// processes follow when they read the UserForgotten event the caller
// appends). It returns how many keys were deleted, or the key table's
// error.
func (s *Store) Forget(ctx context.Context, userID string) (int, error) {
	n, err := s.keys.Forget(ctx, userID)
	if err != nil {
		return 0, err
	}
	s.observeForgotten(userID)
	return n, nil
}

// observeForgotten drops userID's keys from the cache and marks them
// forgotten.
func (s *Store) observeForgotten(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recent.Forget()
	s.forgotten[userID] = true
	delete(s.current, userID)
	for id, k := range s.byKey {
		if k.user == userID {
			delete(s.byKey, id)
		}
	}
}

// Append encrypts the personal fields of events and appends them to the
// inner store. See eventstore.Store.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	gen := s.recent.Generation()
	enc, err := s.encryptAll(ctx, events)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := s.Store.Append(ctx, stream, expected, enc...)
	s.rememberAppended(events, enc, gen, res, err)
	return res, err
}

// Submit is Append through the inner store's pipelining when it has one
// (eventstore.Submitter): encryption happens before submitting, so the
// order of submissions is kept.
func (s *Store) Submit(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) *eventstore.Pending {
	gen := s.recent.Generation()
	enc, err := s.encryptAll(ctx, events)
	if err != nil {
		return eventstore.Resolved(eventstore.AppendResult{}, err)
	}
	p := eventstore.SubmitAppend(ctx, s.Store, stream, expected, enc...)
	if s.encryptedAny(events, enc) {
		p.OnDone(func(res eventstore.AppendResult, err error) { s.rememberAppended(events, enc, gen, res, err) })
	}
	return p
}

// encryptedAny reports whether encryptAll encrypted any of events into enc.
func (s *Store) encryptedAny(events, enc []eventstore.EventData) bool {
	for i := range enc {
		if encrypted(events[i], enc[i]) {
			return true
		}
	}
	return false
}

// encrypted reports whether encryptAll turned e into c (rather than passing
// it as it was).
func encrypted(e, c eventstore.EventData) bool {
	return len(c.Data) > 0 && len(e.Data) > 0 && &c.Data[0] != &e.Data[0]
}

// rememberAppended remembers, once an append committed, what each event it
// encrypted reads as: the plaintext it was given (a copy). The subscribers
// that read the event next (every projection and the live feed of this
// process) then share that reading instead of each decrypting it, the first
// of them included. Only events with an id are remembered (the reading is
// matched on id, position and the stored bytes), and none if a forget came
// since gen. Decrypting an event gives back exactly the bytes encrypted.
func (s *Store) rememberAppended(events, enc []eventstore.EventData, gen uint64, res eventstore.AppendResult, err error) {
	if err != nil || len(res.Positions) != len(enc) {
		return
	}
	for i, e := range enc {
		if e.ID == "" || !encrypted(events[i], e) {
			continue // no id, or stored as given
		}
		plain := append(json.RawMessage(nil), events[i].Data...)
		rec := eventstore.RecordedEvent{ID: e.ID, Position: res.Positions[i], Data: e.Data}
		s.recent.Remember(rec, plain, len(plain), gen)
	}
}

// ReadStream reads from the inner store and decrypts. See eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, opts eventstore.ReadStreamOptions) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Store.ReadStream(ctx, stream, opts)
	if err != nil {
		return nil, err
	}
	return s.decryptAll(ctx, evs)
}

// ReadAll reads from the inner store and decrypts. See eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, opts eventstore.ReadAllOptions) ([]eventstore.RecordedEvent, error) {
	evs, err := s.Store.ReadAll(ctx, opts)
	if err != nil {
		return nil, err
	}
	return s.decryptAll(ctx, evs)
}

// Subscribe subscribes to the inner store; every batch is decrypted. See
// eventstore.Store.
func (s *Store) Subscribe(ctx context.Context, opts eventstore.SubscribeOptions) (eventstore.Subscription, error) {
	sub, err := s.Store.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &subscription{Subscription: sub, s: s}, nil
}

// subscription decrypts the batches of the inner subscription.
type subscription struct {
	eventstore.Subscription
	s *Store
}

// Next implements eventstore.Subscription.
func (d *subscription) Next(ctx context.Context) (eventstore.Batch, error) {
	b, err := d.Subscription.Next(ctx)
	if err != nil {
		return b, err
	}
	b.Events, err = d.s.decryptAll(ctx, b.Events)
	return b, err
}

// encryptAll returns events with their personal fields encrypted; events
// without any are passed as they are. The caller's slice is not modified.
func (s *Store) encryptAll(ctx context.Context, events []eventstore.EventData) ([]eventstore.EventData, error) {
	if s.clearAppends {
		return events, nil
	}
	var out []eventstore.EventData
	for i, e := range events {
		pd, ok := domain.PersonalDataOf(e.Type)
		if !ok {
			continue
		}
		data, err := s.encrypt(ctx, pd, e.Data)
		if err != nil {
			return nil, err
		}
		if data == nil {
			continue
		}
		if out == nil {
			out = append([]eventstore.EventData(nil), events...)
		}
		out[i].Data = data
	}
	if out == nil {
		return events, nil
	}
	return out, nil
}

// encrypt returns data with its personal fields encrypted, or nil when it
// has none to encrypt. Data that does not decode is left to the inner
// store's validation.
func (s *Store) encrypt(ctx context.Context, pd domain.PersonalData, data json.RawMessage) (json.RawMessage, error) {
	p, err := parseEvent(pd, data)
	if err != nil || p.subject == "" {
		return nil, nil
	}
	// One ciphertext per event, in its first present personal field: a
	// JSON object of every present field's value by name. The others
	// refer to it.
	var plain []byte
	var edits []edit
	var first *fieldSpan
	for i := range p.fields {
		f := &p.fields[i]
		if !f.present {
			continue
		}
		if first == nil {
			first = f
			plain = append(plain, '{')
		} else {
			plain = append(plain, ',')
			edits = append(edits, edit{f.start, f.end, jsonRef})
		}
		name, _ := json.Marshal(f.field.Path[len(f.field.Path)-1])
		plain = append(append(append(plain, name...), ':'), data[f.start:f.end]...)
	}
	if first == nil {
		return nil, nil
	}
	keyID, aead, err := s.currentKey(ctx, p.subject)
	if err != nil {
		return nil, err
	}
	sealed := seal(aead, append(plain, '}'), additionalData(nil, p.subject, first.field.Path))
	edits = append(edits, edit{first.start, first.end, encryptedValue(keyID, sealed)})
	return splice(data, edits), nil
}

// currentKey returns the key new events of userID are encrypted under,
// creating the user's first key (or, after a forget, a new person's key).
func (s *Store) currentKey(ctx context.Context, userID string) (string, cipher.AEAD, error) {
	s.mu.RLock()
	id, ok := s.current[userID]
	var k *cachedKey
	if ok {
		k = s.byKey[id]
	}
	s.mu.RUnlock()
	if k != nil && k.aead != nil {
		return id, k.aead, nil
	}
	s.createMu.Lock()
	c, ok := s.creating[userID]
	if !ok {
		c = &keyCreation{userID: userID, done: make(chan struct{})}
		s.creating[userID] = c
		s.queued = append(s.queued, c)
	}
	s.createMu.Unlock()
	for {
		select {
		case <-c.done:
			return c.keyID, c.aead, c.err
		case <-s.lead:
			s.createQueued(ctx)
			s.lead <- struct{}{}
		case <-ctx.Done():
			return "", nil, domain.WrapError(domain.EUNAVAILABLE, "no key for "+userID+" in time", ctx.Err())
		}
	}
}

// keyCreation is one user's current key, looked up or created in a batch;
// done is closed once keyID and aead, or err, are set.
type keyCreation struct {
	userID string
	done   chan struct{}
	keyID  string
	aead   cipher.AEAD
	err    error
}

// keyCreationTimeout bounds one batch, which runs for every user in it,
// whatever the context of the caller that happens to run it.
const keyCreationTimeout = 30 * time.Second

// createQueued looks up or creates the key of every user queued, with one
// write of the key table for the new ones. The caller holds the lead token.
func (s *Store) createQueued(ctx context.Context) {
	s.createMu.Lock()
	batch := s.queued
	s.queued = nil
	s.createMu.Unlock()
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyCreationTimeout)
	defer cancel()
	users := make([]string, len(batch))
	for i, c := range batch {
		users[i] = c.userID
	}
	current, err := s.keys.CurrentKeys(ctx, users)
	if err != nil {
		for _, c := range batch {
			c.err = err
		}
	}
	keys := make([][]byte, len(batch))
	var fresh []NewKey
	var freshOf []int // batch index of each fresh key
	for i, c := range batch {
		if c.err != nil {
			continue
		}
		if k, ok := current[c.userID]; ok {
			c.keyID, keys[i] = k.KeyID, k.Key
			continue
		}
		id, key := newKeyID(), make([]byte, keySize)
		if _, err := rand.Read(key); err != nil {
			c.err = fmt.Errorf("shred: no randomness: %w", err)
			continue
		}
		fresh = append(fresh, NewKey{UserID: c.userID, KeyID: id, Key: key})
		freshOf = append(freshOf, i)
		c.keyID, keys[i] = id, key
	}
	if len(fresh) > 0 {
		if err := s.keys.AddKeys(ctx, fresh); err != nil {
			for _, i := range freshOf {
				batch[i].err = err
			}
		}
	}
	s.mu.Lock()
	for i, c := range batch {
		if c.err != nil {
			continue
		}
		aead, err := newAEAD(keys[i])
		if err != nil {
			c.err = domain.WrapError(domain.EINTERNAL, "the key table holds a malformed key for "+c.userID, err)
			continue
		}
		c.aead = aead
		s.byKey[c.keyID] = &cachedKey{user: c.userID, aead: aead}
		s.current[c.userID] = c.keyID
	}
	s.mu.Unlock()
	s.createMu.Lock()
	for _, c := range batch {
		delete(s.creating, c.userID)
		close(c.done)
	}
	s.createMu.Unlock()
}

// newKeyID returns a random key id: 16 bytes in hex.
func newKeyID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("shred: no randomness: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// key returns the key keyID from the cache or the key table; nil when it is
// gone. Gone keys are remembered too: a forgotten key never comes back
// (except by `keys import`, which a restart picks up).
func (s *Store) key(ctx context.Context, keyID []byte) (cipher.AEAD, error) {
	s.mu.RLock()
	k, ok := s.byKey[string(keyID)] // looked up without allocating
	s.mu.RUnlock()
	if ok {
		return k.aead, nil
	}
	id := string(keyID)
	if err := s.loadKeys(ctx, []string{id}); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byKey[id].aead, nil
}

// loadKeys reads the keys ids from the key table into the cache, in one
// query, remembering those that are gone.
func (s *Store) loadKeys(ctx context.Context, ids []string) error {
	found, err := s.keys.Keys(ctx, ids)
	if err != nil {
		return err
	}
	loaded := make(map[string]*cachedKey, len(ids))
	for _, id := range ids {
		k := &cachedKey{}
		if sk, ok := found[id]; ok {
			k.user = sk.UserID
			if k.aead, err = newAEAD(sk.Key); err != nil {
				return domain.WrapError(domain.EINTERNAL, "the key table holds a malformed key "+id, err)
			}
		}
		loaded[id] = k
	}
	s.mu.Lock()
	for id, k := range loaded {
		s.byKey[id] = k
	}
	s.mu.Unlock()
	return nil
}

// prefetch loads, in one query, the keys that the encrypted fields of evs
// name and the cache lacks, so a batch read after a restart costs one key
// lookup rather than one per user.
func (s *Store) prefetch(ctx context.Context, evs []eventstore.RecordedEvent) error {
	var missing []string
	var seen map[string]bool
	s.mu.RLock()
	for _, e := range evs {
		var last []byte // an event's fields share one key: look it up once
		for d := e.Data; ; {
			i := indexMarker(d)
			if i < 0 {
				break
			}
			d = d[i+len(jsonMarker):]
			j := bytes.IndexByte(d, ':')
			if j <= 0 {
				break
			}
			id := d[:j]
			if d[0] == '=' || bytes.Equal(id, last) { // a reference to the event's ciphertext
				continue
			}
			last = id
			if _, cached := s.byKey[string(id)]; !cached && !seen[string(id)] {
				if seen == nil {
					seen = map[string]bool{}
				}
				seen[string(id)] = true
				missing = append(missing, string(id))
			}
		}
	}
	s.mu.RUnlock()
	if len(missing) < 2 {
		return nil // one key is looked up when it is needed
	}
	return s.loadKeys(ctx, missing)
}

// decryptAll returns evs with their personal fields decrypted, or set to
// placeholders where the key is gone; it also observes UserForgotten
// events. The inner store's slice is not modified (it may share it). An
// event read recently (by another subscriber, typically) is not decrypted
// again: its reading is remembered until a forget (recent.Cache).
func (s *Store) decryptAll(ctx context.Context, evs []eventstore.RecordedEvent) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	set := func(i int, data json.RawMessage) {
		if data == nil {
			return
		}
		if out == nil {
			out = append([]eventstore.RecordedEvent(nil), evs...)
		}
		out[i].Data = data
	}
	// First what is remembered, up to the first UserForgotten: readings
	// after it are looked up only once it is observed. The rest needs its
	// keys, fetched together.
	var todo []int
	forgetAhead := false
	for i, e := range evs {
		if e.Type == domain.TypeUserForgotten {
			forgetAhead = true
		}
		if forgetAhead {
			todo = append(todo, i) // decided once what comes before is observed
			continue
		}
		if !s.needsDecrypt(e) {
			continue
		}
		if data, hit, _ := s.recent.Lookup(e); hit {
			set(i, data)
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) > 1 {
		rest := make([]eventstore.RecordedEvent, len(todo))
		for k, i := range todo {
			rest[k] = evs[i]
		}
		if err := s.prefetch(ctx, rest); err != nil {
			return nil, err
		}
	}
	for _, i := range todo {
		e := evs[i]
		if e.Type == domain.TypeUserForgotten {
			var f struct {
				UserID string `json:"userId"`
			}
			if json.Unmarshal(e.Data, &f) == nil && f.UserID != "" {
				s.observeForgotten(f.UserID)
			}
			continue
		}
		if !s.needsDecrypt(e) {
			continue
		}
		data, hit, gen := s.recent.Lookup(e)
		if !hit {
			pd, _ := domain.PersonalDataOf(e.Type)
			s.decryptions.Add(1)
			var err error
			if data, err = s.decrypt(ctx, pd, e.Data); err != nil {
				return nil, fmt.Errorf("%s at %v in %s: %w", e.Type, e.Position, e.Stream, err)
			}
			s.recent.Remember(e, data, len(data), gen)
		}
		set(i, data)
	}
	if out == nil {
		return evs, nil
	}
	return out, nil
}

// needsDecrypt reports whether e may read otherwise than its stored bytes:
// it has personal fields, and they are encrypted or some user is
// forgotten.
func (s *Store) needsDecrypt(e eventstore.RecordedEvent) bool {
	if _, ok := domain.PersonalDataOf(e.Type); !ok {
		return false
	}
	return indexMarker(e.Data) >= 0 || s.anyForgotten()
}

// anyForgotten reports whether some user has a tombstone.
func (s *Store) anyForgotten() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.forgotten) > 0
}

// isForgotten reports whether userID has a tombstone.
func (s *Store) isForgotten(userID string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.forgotten[userID]
}

// decrypt returns data with its personal fields in clear, or nil when
// nothing changes. An event whose key is gone, or a clear event of a
// forgotten user, has every personal field set to its placeholder, absent
// ones too, so all its rows read the same whether built before or after the
// forget. A ciphertext that does not open under its existing key is an
// EINTERNAL error: the stored bytes were altered.
func (s *Store) decrypt(ctx context.Context, pd domain.PersonalData, data json.RawMessage) (json.RawMessage, error) {
	p, err := parseEvent(pd, data)
	if err != nil || p.subject == "" {
		return nil, nil
	}
	var values []member
	var plain []byte
	encrypted := false
	for _, f := range p.fields {
		if !f.present {
			continue
		}
		v := data[f.start:f.end]
		if bytes.Equal(v, jsonRef) {
			encrypted = true
			continue
		}
		keyID, sealed, enc, err := parseEncrypted(nil, v)
		if err != nil {
			return nil, domain.WrapError(domain.EINTERNAL, "a personal field is malformed", err)
		}
		if !enc {
			continue
		}
		encrypted = true
		aead, err := s.key(ctx, keyID)
		if err != nil {
			return nil, err
		}
		if aead == nil {
			return splice(data, p.placeholders()), nil
		}
		if plain, err = open(aead, sealed, additionalData(nil, p.subject, f.field.Path)); err != nil {
			return nil, domain.WrapError(domain.EINTERNAL, "the personal fields do not decrypt under their key", err)
		}
		if values, _, err = members(plain, 0); err != nil {
			return nil, domain.WrapError(domain.EINTERNAL, "the personal fields decrypt to something else than an object", err)
		}
	}
	if !encrypted {
		if s.isForgotten(p.subject) {
			return splice(data, p.placeholders()), nil
		}
		return nil, nil
	}
	if plain == nil {
		return nil, domain.Errorf(domain.EINTERNAL, "personal fields refer to a ciphertext the event lacks")
	}
	edits := make([]edit, 0, len(p.fields))
	for _, f := range p.fields {
		if !f.present {
			continue
		}
		m, ok := find(values, f.field.Path[len(f.field.Path)-1])
		if !ok {
			return nil, domain.Errorf(domain.EINTERNAL, "the ciphertext lacks the personal field %v", f.field.Path)
		}
		edits = append(edits, edit{f.start, f.end, plain[m.start:m.end]})
	}
	return splice(data, edits), nil
}
