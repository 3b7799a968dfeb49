package eventfilter

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The byte search that skips decoding never hides a match: ids that JSON
// may write in more than one way are always decoded.
func TestPlainJSONString(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice": `"alice"`, "user_123": `"user_123"`, "a.b@c-d": `"a.b@c-d"`,
		"": "", "d&d": "", "<b>": "", `a"b`: "", `a\b`: "", "a/b": "", "José": "", "tab\t": "",
	} {
		if got := string(plainJSONString(in)); got != want {
			t.Errorf("plainJSONString(%q) = %q, want %q", in, got, want)
		}
	}
	// What it promises: encoding/json writes these ids exactly so.
	for _, id := range []string{"alice", "user_123", "a.b@c-d", "x:y+z=1~"} {
		b, _ := json.Marshal(id)
		if !bytes.Equal(b, plainJSONString(id)) {
			t.Errorf("%q: encoding/json writes %s, the search looks for %s", id, b, plainJSONString(id))
		}
	}
}
