package esdb

import (
	"testing"

	"github.com/auraos/realtime/eventstore/chain"
)

// Wrapped metadata unwraps to the bytes appended, whatever they are; stored
// metadata that is not in the wrapper's exact form is returned as it is.
func TestMetadataWrapper(t *testing.T) {
	t.Parallel()
	link := chain.Next(chain.Hash{}, &chain.Event{ID: "x"})
	for _, meta := range []string{`{}`, `{ "userId" : "u1" }`, `[1,2]`, `"auraosChain"`, "{\n}"} {
		got, l, ok := unwrapMetadata(wrapMetadata([]byte(meta), link))
		if !ok || string(got) != meta || l != link {
			t.Errorf("%q: unwrapped to %q, %v, %v", meta, got, l, ok)
		}
	}
	for _, stored := range []string{``, `{}`, `{"auraosChain":"zz","metadata":{}}`, `{"auraosChain":"` + link.String() + `","meta":{}}`, `{"userId":"u1"}`} {
		if got, _, ok := unwrapMetadata([]byte(stored)); ok || string(got) != stored {
			t.Errorf("%q: unwrapped to %q, %v", stored, got, ok)
		}
	}
}
