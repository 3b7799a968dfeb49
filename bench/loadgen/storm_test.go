package main

import (
	"bytes"
	"fmt"
	"testing"
	"testing/iotest"
)

// presencePacket is an Engine.IO packet of event with entries for users,
// shaped as the server sends them; with leaves, a diff.
func presencePacket(event string, joins, leaves []int) []byte {
	entries := func(users []int) []byte {
		var b bytes.Buffer
		b.WriteByte('[')
		for k, i := range users {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"bench_u%d","socketId":"s%d","connectedAt":"2026-12-02T00:00:00.000Z","userProfile":{"uid":"bench_u%d","email":"bench_u%d@bench.example","displayName":"Bench User %d"},"status":"online","lastSeen":"2026-12-02T00:00:00.000Z"}`, i, i, i, i, i)
		}
		b.WriteByte(']')
		return b.Bytes()
	}
	payload := entries(joins)
	if leaves != nil {
		payload = fmt.Appendf(nil, `{"joins":%s,"leaves":%s}`, payload, entries(leaves))
	}
	return fmt.Appendf(nil, `42["%s",%s,"1-0"]`, event, payload)
}

func span(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// Streamed in chunks of any size, a packet counts as it does whole.
func TestStormScansStreamedPacketsAsWhole(t *testing.T) {
	const n = 3000
	list := presencePacket("online_users", span(0, 2000), nil)
	diff := presencePacket("online_users_diff", span(1500, n), span(0, 1600)) // 1500..1599 changed: they stay
	for _, tc := range []struct {
		name  string
		split func(whole []byte) ([]byte, func() *bytes.Reader)
	}{
		{"whole", nil},
		{"streamed after 64 KiB", func(p []byte) ([]byte, func() *bytes.Reader) {
			return p[:largePacket], func() *bytes.Reader { return bytes.NewReader(p[largePacket:]) }
		}},
		{"streamed after 5 bytes", func(p []byte) ([]byte, func() *bytes.Reader) {
			return p[:5], func() *bytes.Reader { return bytes.NewReader(p[5:]) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			feed := func(st *stormClient, p []byte, oneByte bool, f func(prefix []byte, rest *bytes.Reader, slow bool) (int64, error)) int64 {
				t.Helper()
				var got int64
				var err error
				if tc.split == nil {
					got, err = f(p, nil, false)
				} else {
					prefix, rest := tc.split(p)
					got, err = f(prefix, rest(), oneByte)
				}
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			for _, oneByte := range []bool{false, true} {
				full := &stormClient{}
				count := feed(full, list, oneByte, func(prefix []byte, rest *bytes.Reader, slow bool) (int64, error) {
					if rest == nil {
						return full.countKey(prefix, nil, socketIDKey)
					}
					if slow {
						return full.countKey(prefix, iotest.OneByteReader(rest), socketIDKey)
					}
					return full.countKey(prefix, iotest.HalfReader(rest), socketIDKey)
				})
				if count != 2000 {
					t.Fatalf("full list: counted %d entries, want 2000", count)
				}
				d := &stormClient{}
				apply := func(isDiff bool) func(prefix []byte, rest *bytes.Reader, slow bool) (int64, error) {
					return func(prefix []byte, rest *bytes.Reader, slow bool) (int64, error) {
						if rest == nil {
							return d.applyPresence(prefix, nil, isDiff, n)
						}
						if slow {
							return d.applyPresence(prefix, iotest.OneByteReader(rest), isDiff, n)
						}
						return d.applyPresence(prefix, iotest.HalfReader(rest), isDiff, n)
					}
				}
				if got := feed(d, list, oneByte, apply(false)); got != 2000 {
					t.Fatalf("diff client's list: %d users, want 2000", got)
				}
				// Leaves 0..1599 (1500..1599 rejoin changed), joins 1500..2999.
				if got := feed(d, diff, oneByte, apply(true)); got != n-1500 {
					t.Fatalf("after the diff: %d users, want %d", got, n-1500)
				}
				if d.errors != 0 {
					t.Fatalf("%d scan errors", d.errors)
				}
			}
		})
	}
}
