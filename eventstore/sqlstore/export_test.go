package sqlstore

import "context"

// LimitSQLitePages caps the size of the SQLite database file the writer may
// grow to, to provoke a full disk (SQLITE_FULL) in tests.
func LimitSQLitePages(s *Store, pages int) error {
	_, err := s.writeDB.ExecContext(context.Background(), "PRAGMA max_page_count = ?", pages)
	return err
}

// PageCount returns the database's current number of pages.
func PageCount(s *Store) (int, error) {
	var n int
	err := s.writeDB.QueryRowContext(context.Background(), "PRAGMA page_count").Scan(&n)
	return n, err
}

// HeadCommits returns how many group commits s made in one statement at the
// head it knew.
func HeadCommits(s *Store) int64 { return s.headCommits.Load() }

// SubscriptionDatabaseReads returns how many subscription reads of s asked
// the database rather than the tail.
func SubscriptionDatabaseReads(s *Store) int64 { return s.databaseReads.Load() }
