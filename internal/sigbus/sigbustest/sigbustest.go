// Package sigbustest helps the signal buses' tests.
package sigbustest

import (
	"testing"
	"time"
)

// Next returns the next signal from a bus's Signals channel; it fails the
// test when the channel is closed or nothing comes within 10s.
func Next(t testing.TB, signals <-chan []byte) string {
	t.Helper()
	select {
	case p, ok := <-signals:
		if !ok {
			t.Fatal("signals closed")
		}
		return string(p)
	case <-time.After(10 * time.Second):
		t.Fatal("no signal within 10s")
		return ""
	}
}

// Bus is what CloseEnds checks: a signal bus.
type Bus interface {
	Publish(payload []byte) bool
	Signals() <-chan []byte
	Close() error
}

// CloseEnds closes b and checks that it then refuses signals and that its
// Signals channel is closed.
func CloseEnds(t testing.TB, b Bus) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Publish([]byte("late")) {
		t.Fatal("a closed bus accepted a signal")
	}
	if _, ok := <-b.Signals(); ok {
		t.Fatal("signals still open after Close")
	}
}
