package shred

// QueuedKeyCreations returns how many users wait for their key to be
// created in the next batch.
func QueuedKeyCreations(s *Store) int {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	return len(s.queued)
}
