//go:build !(linux && (amd64 || arm64))

// PATCH(auraos): this file is not upstream's; see PATCHED.md, "Idle
// websockets hold no goroutine and no read buffer".

package transports

import "errors"

// Elsewhere there is no poller: every websocket keeps its reading goroutine.
func newPoller() (poller, error) {
	return nil, errors.ErrUnsupported
}
