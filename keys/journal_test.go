package keys

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
)

// The old one-array <tier>.json is read as it is, and the first write
// turns it into snapshot 1 and a journal; the old file is kept aside
// and never read again.
func TestLegacyTierIsMigrated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := testRecord("high"), testRecord("high")
	a.Account = "h1"
	raw, _ := json.Marshal([]entry{toEntry(a), toEntry(b)})
	legacy := filepath.Join(dir, "high.json")
	if err := os.WriteFile(legacy, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	l := testLedger(t, dir, nil)
	if all, err := l.All(ctx); err != nil || len(all) != 2 {
		t.Fatalf("All before the migration = %v, %v", all, err)
	}
	if _, err := l.Commit(ctx, Change{Op: OpBind, Tier: "high", Hash: b.Hash, Account: "h2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("the old file is still in place: %v", err)
	}
	if _, err := os.Stat(legacy + ".migrated"); err != nil {
		t.Fatal(err)
	}
	ls := journalLines(t, dir, "high")
	if len(ls) != 2 || ls[1]["op"] != "bind" || ls[0]["gen"] != 1.0 {
		t.Fatalf("journal after the migration = %v", ls)
	}
	got, err := NewLedger(dir, nil).All(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("a fresh reader: %v, %v", got, err)
	}
	acct := map[string]string{}
	for _, r := range got {
		acct[r.Hash] = r.Account
	}
	if acct[a.Hash] != "h1" || acct[b.Hash] != "h2" {
		t.Fatalf("accounts after the migration = %v", acct)
	}
}

// A journal line cut short by a crash is ignored by readers and cut away
// by the next writer; every line before it stays.
func TestTornLastLineIsIgnoredThenTruncated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := testLedger(t, dir, nil)
	a, b := testRecord("trial"), testRecord("trial")
	if _, err := l.Commit(ctx, Change{Op: OpIssue, Record: a}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "trial"+journalSuffix)
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := `{"op":"bind","hash":"` + a.Hash + `","acc`
	if _, err := f.WriteString(torn); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if got, err := NewLedger(dir, nil).All(ctx); err != nil || len(got) != 1 || got[0].Account != "" {
		t.Fatalf("a reader after the torn line: %+v, %v", got, err)
	}
	if _, err := l.Commit(ctx, Change{Op: OpIssue, Record: b}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if strings.Contains(string(data), `"acc{`) || strings.Contains(string(data), torn) {
		t.Fatalf("the torn line is still in the journal:\n%s", data)
	}
	journalLines(t, dir, "trial") // every line parses
	if got, err := NewLedger(dir, nil).All(ctx); err != nil || len(got) != 2 {
		t.Fatalf("after the next write: %+v, %v", got, err)
	}
}

// A journal past its snapshot's size is folded into a new snapshot; a
// reader that knew the old generation reads the new one whole.
func TestCompactionFoldsTheJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := testLedger(t, dir, nil)
	r := NewLedger(dir, nil) // another replica, reading only
	var cs []Change
	for range 400 { // ~170 KB of issue lines: past compactMin
		cs = append(cs, Change{Op: OpIssue, Record: testRecord("trial")})
	}
	if _, err := w.Commit(ctx, cs[:1]...); err != nil {
		t.Fatal(err)
	}
	if got, err := r.All(ctx); err != nil || len(got) != 1 {
		t.Fatalf("reader: %d, %v", len(got), err)
	}
	if _, err := w.Commit(ctx, cs[1:]...); err != nil {
		t.Fatal(err)
	}
	w.waitCompactions()
	ls := journalLines(t, dir, "trial")
	if len(ls) != 1 || ls[0]["gen"] != 1.0 {
		t.Fatalf("journal after compaction = %v, want an empty generation 1", ls)
	}
	got, err := r.All(ctx)
	if err != nil || len(got) != 400 {
		t.Fatalf("reader after the compaction: %d, %v", len(got), err)
	}
}

// A bulk issue is one ledger commit: every key in Redis and in the
// journal, and a key issued by either path authenticates.
func TestIssueManyIsOneCommit(t *testing.T) {
	ctx := context.Background()
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	raw, recs, err := f.store.IssueMany(ctx, "trial", time.Hour, "bulk", 100)
	if err != nil || len(raw) != 100 || len(recs) != 100 {
		t.Fatalf("IssueMany: %d, %d, %v", len(raw), len(recs), err)
	}
	ls := journalLines(t, f.dir, "trial")
	if len(ls) != 101 {
		t.Fatalf("journal has %d lines, want a header and 100 issues", len(ls))
	}
	for i, k := range raw {
		got, err := f.store.Authenticate(ctx, k)
		if err != nil || got.ID != recs[i].ID || got.Note != "bulk" || !got.Expires.Equal(t0.Add(time.Hour)) {
			t.Fatalf("key %d: %+v, %v", i, got, err)
		}
	}
	if _, _, err := f.store.IssueMany(ctx, "trial", 0, "", MaxIssue+1); err == nil {
		t.Fatal("an issue past MaxIssue was accepted")
	}
}
