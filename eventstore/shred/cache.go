package shred

// recentSize and recentBytes bound what the Store remembers of the events
// read last (internal/recent): every follower of the log (the live feed,
// each projection runner, the AI assistant) reads the same recent events
// within a batch or two of each other, so a couple of their 500-event
// batches, and at most 1 MiB of bytes (a slow consumer's heap test counts
// them), are enough. The Store empties it whenever a user is forgotten
// (forgets are rare), and a reading decrypted before a forget is never
// added after it, so it never holds what a forgotten user's key opened once
// the Store knows of the forget.
const (
	recentSize  = 1024
	recentBytes = 1 << 20
)
