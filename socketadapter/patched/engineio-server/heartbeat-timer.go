// PATCH(auraos): this file is not upstream; see PATCHED.md.

package engine

import "time"

// heartbeatTimer replaces utils.Timer for the ping interval and ping timeout
// of every socket. utils.SetTimeout parks a goroutine on each timer for as
// long as the timer lives, and the ping interval lives as long as the
// connection: one goroutine and its stack per idle socket. A runtime timer
// started with time.AfterFunc costs no goroutine until it fires.
type heartbeatTimer struct {
	timer *time.Timer
	after time.Duration
}

// setHeartbeatTimeout calls fn on its own goroutine after d, unless the timer
// is cleared first.
func setHeartbeatTimeout(fn func(), d time.Duration) *heartbeatTimer {
	return &heartbeatTimer{timer: time.AfterFunc(d, fn), after: d}
}

// Refresh starts the timer's full duration again, whether it fired already
// or not, as utils.Timer.Refresh does.
func (t *heartbeatTimer) Refresh() {
	t.timer.Reset(t.after)
}

// clearHeartbeatTimeout stops t (nil is allowed); fn does not run unless it
// had started already.
func clearHeartbeatTimeout(t *heartbeatTimer) {
	if t != nil {
		t.timer.Stop()
	}
}
