package follow

import (
	"testing"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore"
)

func sharedMessage(pos uint64, text string) eventstore.RecordedEvent {
	data := `{"schemaVersion":1,"id":"m1","roomName":"lobby","userId":"alice","userName":"Alice","userAvatar":null,"message":"` + text +
		`","messageType":"text","isAI":false,"at":"2026-12-01T10:00:00Z"}`
	return eventstore.RecordedEvent{ID: "e1", Position: eventstore.Pos(pos), Type: domain.TypeMessagePosted, Data: []byte(data)}
}

// Followers share the decoding of a message, only for the bytes it was
// decoded from, and a decoded UserForgotten empties what they share.
func TestDecodeSharedSharesOnlyTheSameBytesAndForgets(t *testing.T) {
	shared.Forget()
	rec := sharedMessage(1_000_001, "hello")
	first, err := decodeShared(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := shared.Lookup(rec); !ok {
		t.Fatal("the decoded message is not shared")
	}
	again, err := decodeShared(sharedMessage(1_000_001, "hello")) // other bytes, same content
	if err != nil || again != first {
		t.Fatalf("decoded again: %+v, %v; want %+v", again, err, first)
	}

	// The same position read otherwise (a forgotten user's erased fields).
	erased := sharedMessage(1_000_001, domain.PlaceholderText)
	got, err := decodeShared(erased)
	if err != nil {
		t.Fatal(err)
	}
	if m := got.(domain.MessagePosted); m.Message != domain.PlaceholderText {
		t.Errorf("the erased reading decodes as %q", m.Message)
	}

	_, _, gen := shared.Lookup(rec)
	if _, err := decodeShared(eventstore.RecordedEvent{Position: eventstore.Pos(1_000_002), Type: domain.TypeUserForgotten,
		Data: []byte(`{"schemaVersion":1,"userId":"alice","reason":"asked","by":"ops","at":"2026-12-01T10:00:00Z"}`)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := shared.Len(); n != 0 {
		t.Errorf("%d decodings still shared after a UserForgotten", n)
	}
	shared.Remember(rec, first, 0, gen) // decoded before the forget, remembered after it
	if _, ok, _ := shared.Lookup(rec); ok {
		t.Error("a decoding begun before the UserForgotten was shared after it")
	}
}

// What is shared stays bounded in entries and in bytes.
func TestDecodeSharedIsBounded(t *testing.T) {
	shared.Forget()
	defer shared.Forget()
	long := string(make([]byte, 4000))
	for i := range 3 * sharedSize {
		text := "short"
		if i%2 == 0 {
			text = long
		}
		rec := sharedMessage(uint64(2_000_000+i), text)
		if _, err := decodeShared(rec); err != nil && i%2 == 1 {
			t.Fatal(err)
		}
	}
	if n, b := shared.Len(); n > sharedSize || b > sharedBytes {
		t.Errorf("%d entries of %d bytes shared; want at most %d and %d", n, b, sharedSize, sharedBytes)
	}
}
