package shred

// QueuedKeyCreations returns how many users wait for their key to be
// created in the next batch.
func QueuedKeyCreations(s *Store) int {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	return len(s.queued)
}

// Decryptions returns how many events s has decrypted on reading.
func Decryptions(s *Store) int64 { return s.decryptions.Load() }
