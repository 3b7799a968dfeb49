package transports

// PATCH(auraos): this file is not upstream; see PATCHED.md.

import (
	"sync"

	ws "github.com/gorilla/websocket"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

// preparedCacheSize is how many recent broadcast frames keep their prepared
// message. A broadcast reaches its sockets within a short time, so a few
// hundred recent frames cover them.
const preparedCacheSize = 512

type preparedKey struct {
	frame       types.BufferInterface
	messageType int
}

// preparedCache maps a broadcast's pre-encoded frame (by identity: the
// socket.io adapter encodes a broadcast once and hands the same buffer to
// every socket) to its gorilla PreparedMessage, which gorilla made to be
// shared by many connections. Holding the buffer keeps its address from
// being reused while it is a key; the oldest entry leaves first.
var preparedCache = struct {
	sync.Mutex
	byKey map[preparedKey]*ws.PreparedMessage
	ring  [preparedCacheSize]preparedKey
	next  int
}{byKey: make(map[preparedKey]*ws.PreparedMessage, preparedCacheSize)}

func sharedPreparedMessage(messageType int, frame types.BufferInterface) (*ws.PreparedMessage, error) {
	c := &preparedCache
	key := preparedKey{frame: frame, messageType: messageType}
	c.Lock()
	pm, ok := c.byKey[key]
	c.Unlock()
	if ok {
		return pm, nil
	}
	pm, err := ws.NewPreparedMessage(messageType, frame.Bytes())
	if err != nil {
		return nil, err
	}
	c.Lock()
	defer c.Unlock()
	if existing, ok := c.byKey[key]; ok {
		return existing, nil
	}
	if old := c.ring[c.next]; old.frame != nil {
		delete(c.byKey, old)
	}
	c.ring[c.next] = key
	c.byKey[key] = pm
	c.next = (c.next + 1) % preparedCacheSize
	return pm, nil
}
