package main

import (
	"strings"
	"testing"
)

// A storage flag in a form auraos does not take is refused with the form it
// wants, in particular for SQLite, which is named by a word and placed by
// --data-dir.
func TestOpsEventStoreNamesTheFormWanted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ flag, value, want string }{
		{"--event-store", "sqlite://events.db", "give --event-store sqlite (the default) together with --data-dir DIR, the directory of its events.db"},
		{"--event-store", "./data/events.db", "give --event-store sqlite (the default) together with --data-dir DIR"},
		{"--event-store", "mysql://db/x", `unknown kind "mysql" (want sqlite together with --data-dir DIR, a postgres:// URL, or an esdb://`},
		{"--read-db", "sqlite://read.db", "leave --read-db empty and give --data-dir DIR, the directory of their read.db"},
	} {
		dir := t.TempDir()
		fillStore(t, dir)
		_, stderr, code := runAuraos(t, nil, "projections", "status", "--data-dir", dir, c.flag, c.value)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want it to say %q", c.flag, c.value, code, stderr, c.want)
		}
	}
}
