package chain_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/auraos/realtime/domain"
	"github.com/auraos/realtime/eventstore/chain"
)

// reference encodes an event the way the package documentation says, with
// nothing shared with the package, as an auditor's re-implementation would.
func reference(prev chain.Hash, e chain.Event) chain.Hash {
	var b bytes.Buffer
	b.Write(prev[:])
	u := func(v uint64) { _ = binary.Write(&b, binary.BigEndian, v) }
	field := func(p []byte) { u(uint64(len(p))); b.Write(p) }
	u(e.Position)
	field([]byte(e.ID))
	field([]byte(e.Stream))
	u(e.Version)
	field([]byte(e.Type))
	field(e.Data)
	field(e.Metadata)
	_ = binary.Write(&b, binary.BigEndian, e.Time)
	return sha256.Sum256(b.Bytes())
}

// pinned is the hash of the fifth event of sample(5), as the documented encoding gives it.
const pinned = "972a531470bc28f2b05ce2436fb712c43c458e08a7f1e6b7f9a5ce8c537a8836"

func sample(n int) []chain.Event {
	evs := make([]chain.Event, n)
	for i := range evs {
		evs[i] = chain.Event{
			Position: uint64(i + 1), ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Stream: fmt.Sprintf("chat-%d", i%3), Version: uint64(i / 3), Type: "MessagePosted",
			Data: []byte(fmt.Sprintf(`{"i":%d}`, i)), Metadata: []byte(`{"userId":"u1"}`), Time: 1764000000000000 + int64(i),
		}
	}
	return evs
}

// hashes returns the chain of evs.
func hashes(evs []chain.Event) [][]byte {
	out := make([][]byte, len(evs))
	var prev chain.Hash
	for i := range evs {
		prev = chain.Next(prev, &evs[i])
		out[i] = append([]byte(nil), prev[:]...)
	}
	return out
}

func TestNextMatchesTheDocumentedEncoding(t *testing.T) {
	t.Parallel()
	var prev chain.Hash
	for _, e := range sample(5) {
		got, want := chain.Next(prev, &e), reference(prev, e)
		if got != want {
			t.Fatalf("position %d: %s, want %s", e.Position, got, want)
		}
		prev = got
	}
	// Pinned, so that a change of the encoding cannot pass unnoticed: logs
	// written before it would no longer verify.
	if got := prev.String(); got != pinned {
		t.Fatalf("fifth hash %s, want %s", got, pinned)
	}
}

// Moving bytes from one field to the next changes the hash: the lengths
// keep fields apart.
func TestFieldsDoNotRunTogether(t *testing.T) {
	t.Parallel()
	a := chain.Event{Position: 1, ID: "ab", Stream: "c", Type: "t", Data: []byte("{}"), Metadata: []byte("{}")}
	b := a
	b.ID, b.Stream = "a", "bc"
	if chain.Next(chain.Hash{}, &a) == chain.Next(chain.Hash{}, &b) {
		t.Fatal("two different events share a hash")
	}
}

func TestHasherAllocatesNothing(t *testing.T) {
	h := chain.NewHasher()
	e := sample(1)[0]
	var prev chain.Hash
	if n := testing.AllocsPerRun(100, func() { prev = h.Next(prev, &e) }); n != 0 {
		t.Fatalf("%v allocations per hash", n)
	}
}

func TestVerifier(t *testing.T) {
	t.Parallel()
	const n = 8
	good := sample(n)
	goodHashes := hashes(good)
	head := chain.Anchor{Position: n}
	copy(head.Hash[:], goodHashes[n-1])
	mid := chain.Anchor{Position: 4}
	copy(mid.Hash[:], goodHashes[3])
	type row struct {
		e    chain.Event
		hash []byte
	}
	rows := func() []row {
		out := make([]row, n)
		for i := range out {
			out[i] = row{good[i], goodHashes[i]}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		change func([]row) []row
		expect *chain.Anchor
		wantAt uint64 // 0: the log verifies
	}{
		{"untouched", nil, nil, 0},
		{"untouched with the head expected", nil, &head, 0},
		{"untouched with a middle position expected", nil, &mid, 0},
		{"data edited", func(r []row) []row { r[4].e.Data = []byte(`{"i":40}`); return r }, nil, 5},
		{"metadata edited", func(r []row) []row { r[2].e.Metadata = []byte(`{"userId":"u2"}`); return r }, nil, 3},
		{"time edited", func(r []row) []row { r[2].e.Time++; return r }, nil, 3},
		{"row deleted", func(r []row) []row { return append(r[:5], r[6:]...) }, nil, 6},
		{"first row deleted", func(r []row) []row { return r[1:] }, nil, 1},
		{"rows swapped with their hashes", func(r []row) []row {
			r[2].e, r[3].e = r[3].e, r[2].e
			r[2].hash, r[3].hash = r[3].hash, r[2].hash
			r[2].e.Position, r[3].e.Position = 3, 4
			return r
		}, nil, 3},
		{"rows swapped, hashes left", func(r []row) []row {
			r[2].e, r[3].e = r[3].e, r[2].e
			r[2].e.Position, r[3].e.Position = 3, 4
			return r
		}, nil, 3},
		{"row inserted", func(r []row) []row {
			extra := r[7]
			extra.e.Position = 9
			r[7].e.ID = "00000000-0000-4000-8000-999999999999"
			return append(r, extra)
		}, nil, 8},
		{"hash missing", func(r []row) []row { r[1].hash = nil; return r }, nil, 2},
		{"expected hash differs", nil, &chain.Anchor{Position: 4, Hash: head.Hash}, 4},
		{"expected position deleted", func(r []row) []row { return append(r[:3], r[4:]...) }, &mid, 4},
		{"expected position past the end", func(r []row) []row { return r[:3] }, &mid, 4},
		{"last row deleted, head expected", func(r []row) []row { return r[:n-1] }, &head, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := rows()
			if tc.change != nil {
				rs = tc.change(rs)
			}
			v := chain.NewVerifier(tc.expect)
			for i := range rs {
				if !v.Add(&rs[i].e, rs[i].hash) {
					break
				}
			}
			err := v.Err()
			if tc.wantAt == 0 {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				if v.Count() != n || v.Head() != head {
					t.Fatalf("%d events, head %v; want %d, %v", v.Count(), v.Head(), n, head)
				}
				return
			}
			var be *chain.BreakError
			if !errors.As(err, &be) || be.Position != tc.wantAt {
				t.Fatalf("got %v, want a break at %d", err, tc.wantAt)
			}
			if domain.ErrorCode(be.Coded()) != domain.ECONFLICT {
				t.Fatalf("code %s", domain.ErrorCode(be.Coded()))
			}
		})
	}
}

func TestParseAnchor(t *testing.T) {
	t.Parallel()
	h := chain.Next(chain.Hash{}, &sample(1)[0])
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"12:" + h.String(), true},
		{"12:" + fmt.Sprintf("%X", h[:]), true},
		{"12" + h.String(), false},
		{":" + h.String(), false},
		{"0:" + h.String(), false},
		{"-1:" + h.String(), false},
		{"x:" + h.String(), false},
		{"12:" + h.String()[:63], false},
		{"12:" + h.String()[:63] + "g", false},
		{"99999999999999999999:" + h.String(), false},
		{"", false},
	} {
		a, err := chain.ParseAnchor(tc.in)
		if tc.ok {
			if err != nil || a.Position != 12 || a.Hash != h || a.String() != "12:"+h.String() {
				t.Errorf("%q: %v, %v", tc.in, a, err)
			}
			continue
		}
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%q: %v, want an EINVALID error", tc.in, err)
		}
	}
}
