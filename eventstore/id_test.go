package eventstore_test

import (
	"sort"
	"testing"
	"time"

	"github.com/auraos/realtime/eventstore"
)

func TestIDs(t *testing.T) {
	t.Parallel()
	a, b := eventstore.NewID(), eventstore.NewID()
	if !eventstore.IsUUID(a) || a == b || a[14] != '7' {
		t.Fatalf("NewID: %s %s", a, b)
	}
	if x1, x2 := eventstore.NameID("x"), eventstore.NameID("x"); eventstore.NameID("a", "bc") == eventstore.NameID("ab", "c") || x1 != x2 {
		t.Fatal("NameID is not a length-prefixed, deterministic hash")
	}
	// Ordered ids are deterministic, valid, and sort like their bases.
	var bases, ids []string
	for range 50 {
		bases = append(bases, eventstore.NewID())
		time.Sleep(time.Millisecond) // distinct millisecond prefixes
	}
	for _, base := range bases {
		id := eventstore.OrderedNameID(base, "MessagePosted", "0")
		if !eventstore.IsUUID(id) || id != eventstore.OrderedNameID(base, "MessagePosted", "0") || id == eventstore.OrderedNameID(base, "MessagePosted", "1") {
			t.Fatalf("OrderedNameID(%s) = %s", base, id)
		}
		if id[:13] != base[:13] || id[14] != '8' {
			t.Fatalf("OrderedNameID(%s) = %s does not keep the time prefix", base, id)
		}
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ordered ids do not sort like their bases")
	}
	if got := eventstore.OrderedNameID("not-a-uuid", "x"); got != eventstore.NameID("not-a-uuid", "x") {
		t.Fatalf("a base that is no v7 UUID: %s", got)
	}
}
