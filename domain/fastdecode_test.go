package domain

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// messagePostedSeeds are shapes the fast path takes and shapes it must
// leave to encoding/json.
func messagePostedSeeds() []string {
	avatar := "https://example.com/a.png"
	plain, _ := json.Marshal(MessagePosted{SchemaVersion: 1, ID: "m1", RoomName: "general", UserID: "u1", UserName: "Ünïcode 名前",
		UserAvatar: &avatar, Message: "hello, world", MessageType: MessageText, IsAI: true, ClientMsgID: "c1", InReplyTo: "m0",
		At: time.Date(2026, 12, 1, 9, 0, 0, 123456789, time.UTC)})
	nilAvatar, _ := json.Marshal(MessagePosted{SchemaVersion: 1, ID: "m2", Message: "<b>&</b>", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))})
	return []string{
		string(plain), string(nilAvatar), `{}`, ` { "id" : "a" , "isAI" : false } `,
		`{"schemaVersion":2,"id":"x"}`, `{"schemaVersion":-0}`, `{"schemaVersion":01}`, `{"schemaVersion":1.0}`, `{"schemaVersion":1e3}`,
		`{"schemaVersion":1234567890}`, `{"ID":"case"}`, `{"id":"a\"b"}`, `{"id":"a\u00e9"}`, `{"id":null}`, `{"userAvatar":null}`,
		`{"userAvatar":"x","userAvatar":null}`, `{"id":"a","id":"b"}`, `{"at":"2026-12-01T09:00:00Z"}`, `{"at":"2026-12-01 09:00:00"}`,
		`{"at":null}`, `{"id":"a"} x`, `{"id":"a",}`, `{"id":"\xff"}`, "{\"id\":\"a\tb\"}", `{"isAI":1}`, `{"extra":1}`, `[]`, ``,
	}
}

// The fast path decodes exactly what encoding/json decodes, or declines.
func checkMessagePosted(t *testing.T, data []byte) {
	got, ok := decodeMessagePosted(data)
	var want MessagePosted
	err := json.Unmarshal(data, &want)
	if !ok {
		return
	}
	if err != nil {
		t.Fatalf("fast path accepted %q, encoding/json says %v", data, err)
	}
	if !reflect.DeepEqual(got, want) || !got.At.Equal(want.At) || got.At.Location().String() != want.At.Location().String() {
		t.Fatalf("%q: fast path %+v, encoding/json %+v", data, got, want)
	}
}

func TestDecodeMessagePostedAgreesWithJSON(t *testing.T) {
	accepted := 0
	for _, s := range messagePostedSeeds() {
		checkMessagePosted(t, []byte(s))
		if _, ok := decodeMessagePosted([]byte(s)); ok {
			accepted++
		}
	}
	// What json.Marshal writes takes the fast path, unless it escaped
	// something (<, > and & included): encoding/json decodes that.
	seeds := messagePostedSeeds()
	if _, ok := decodeMessagePosted([]byte(seeds[0])); !ok {
		t.Fatalf("fast path declined %s", seeds[0])
	}
	if _, ok := decodeMessagePosted([]byte(seeds[1])); ok {
		t.Fatalf("fast path took the escapes of %s", seeds[1])
	}
	if accepted < 5 {
		t.Fatalf("fast path took only %d seeds", accepted)
	}
}

func FuzzDecodeMessagePosted(f *testing.F) {
	for _, s := range messagePostedSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkMessagePosted(t, data) })
}
