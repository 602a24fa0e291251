package keys

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// stopAt is a ledger hook that parks the goroutine reaching point until
// the test lets it go.
type stopAt struct {
	point   string
	reached chan struct{}
	resume  chan struct{}
}

func newStopAt(point string) *stopAt {
	return &stopAt{point: point, reached: make(chan struct{}), resume: make(chan struct{})}
}

func (s *stopAt) hook(p string) {
	if p == s.point {
		close(s.reached)
		<-s.resume
	}
}

// wait fails the test if no goroutine reaches the point (a deadline, not
// a time window: it only ends a test that would otherwise hang).
func (s *stopAt) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.reached:
	case <-time.After(20 * time.Second):
		t.Fatalf("the ledger never reached %q", s.point)
	}
}

// A compaction's snapshot is written off the commit path: commits go on
// while it is written, and their lines start the next journal. A crash
// between the snapshot's rename and the new journal's loses none of them:
// a reader replays them, and the next writer carries them over.
func TestCompactionDoesNotHoldUpCommits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	written, renamed := newStopAt("compact-written"), newStopAt("compacted")
	w := testLedger(t, dir, nil)
	w.hook = func(p string) { written.hook(p); renamed.hook(p) }
	var cs []Change
	for range 400 { // ~170 KB of issue lines: past compactMin
		cs = append(cs, Change{Op: OpIssue, Record: testRecord("trial")})
	}
	if _, err := w.Commit(ctx, cs...); err != nil {
		t.Fatal(err)
	}
	written.wait(t) // the new snapshot is written; the compactor holds no lock

	// Commits meanwhile: five new keys and a binding of an old one.
	var more []Change
	for range 5 {
		more = append(more, Change{Op: OpIssue, Record: testRecord("trial")})
	}
	more = append(more, Change{Op: OpBind, Tier: "trial", Hash: cs[0].Record.Hash, Account: "acct-b"})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := w.Commit(cctx, more...); err != nil {
		t.Fatalf("a commit waited for the compaction: %v", err)
	}

	close(written.resume)
	renamed.wait(t) // snapshot 1 renamed in, journal 0 not replaced yet
	crashed := t.TempDir()
	for _, f := range []string{"trial" + snapSuffix, "trial" + journalSuffix} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	close(renamed.resume)
	w.waitCompactions()

	check := func(name, dir string, n int) {
		t.Helper()
		all, err := NewLedger(dir, nil).All(ctx)
		if err != nil || len(all) != n {
			t.Fatalf("%s: a new reader sees %d keys (%v), want %d", name, len(all), err, n)
		}
		for _, r := range all {
			if want := map[bool]string{true: "acct-b"}[r.Hash == cs[0].Record.Hash]; r.Account != want {
				t.Fatalf("%s: %s bound to %q, want %q", name, r.ID, r.Account, want)
			}
		}
	}
	// Done: snapshot 1 covers the 400, journal 1 starts with the 6 lines.
	check("after the compaction", dir, 405)
	ls := journalLines(t, dir, "trial")
	if ls[0]["gen"] != 1.0 || len(ls) != 7 {
		t.Fatalf("journal after the compaction: header %v and %d lines, want generation 1 and the 6 lines committed meanwhile", ls[0], len(ls)-1)
	}

	// Crashed between the renames: snapshot 1 and the old journal.
	check("crashed inside the compaction", crashed, 405)
	next := testLedger(t, crashed, nil)
	last := testRecord("trial")
	if _, err := next.Commit(ctx, Change{Op: OpIssue, Record: last}); err != nil {
		t.Fatal(err)
	}
	check("the next writer after the crash", crashed, 406)
	ls = journalLines(t, crashed, "trial")
	if ls[0]["gen"] != 1.0 || len(ls) != 8 || ls[7]["hash"] != last.Hash {
		t.Fatalf("next writer's journal: header %v and %d lines, want generation 1: the 6 carried lines, then its own", ls[0], len(ls)-1)
	}
}
