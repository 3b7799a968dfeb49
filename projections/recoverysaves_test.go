package projections_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/auraos/realtime/projections"
	"github.com/auraos/realtime/schema/schematest"
)

// Concurrent saves share transactions and keep the rules of one save: every
// row is stored, a write of an older revision changes nothing, and a write
// for another generation changes nothing.
func TestSessionSaverGroupsSaves(t *testing.T) {
	t.Parallel()
	for _, kind := range schematest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ctx := testCtx(t)
			rdb := schematest.OpenReadDB(t, kind)
			saver := projections.NewSessionSaver(rdb.Writer)
			row := func(i int, generation, revision int64) projections.RecoverySession {
				return projections.RecoverySession{PIDHash: fmt.Sprintf("pid-%03d", i), SessionID: fmt.Sprintf("s-%d", i), NodeID: "n1",
					Generation: generation, Revision: revision, UserID: "u", State: fmt.Sprintf("rev %d gen %d", revision, generation), Connected: true}
			}
			const sessions = 120
			var wg sync.WaitGroup
			errs := make(chan error, sessions*3)
			for i := range sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// Revisions 1..3 of generation 1, then a late revision 2
					// and a write of a generation nobody claimed.
					for _, r := range []projections.RecoverySession{row(i, 1, 1), row(i, 1, 3), row(i, 1, 2), row(i, 2, 9)} {
						if err := saver.Save(ctx, r); err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			var got []projections.RecoverySession
			if err := rdb.Reader.NewSelect().Model(&got).Order("pid_hash").Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if len(got) != sessions {
				t.Fatalf("%d rows stored, want %d", len(got), sessions)
			}
			for _, r := range got {
				if r.Generation != 1 || r.Revision != 3 || r.State != "rev 3 gen 1" {
					t.Errorf("%s: generation %d revision %d state %q, want generation 1, revision 3", r.PIDHash, r.Generation, r.Revision, r.State)
				}
			}
		})
	}
}
