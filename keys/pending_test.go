package keys

import (
	"context"
	"testing"
)

// Pending counts a posted change until it is in the files: while the
// writer appends its batch (taken off the queue, not yet fsynced) too. A
// bench or an operator reads it (/metrics) to know that every binding is
// in the ledger without reading the files; counting only the queue said
// 0 while the batch was still being written.
func TestPendingCountsTheBatchBeingWritten(t *testing.T) {
	ctx := context.Background()
	l := testLedger(t, t.TempDir(), nil)
	a, b := testRecord("trial"), testRecord("trial")
	if _, err := l.Commit(ctx, Change{Op: OpIssue, Record: a}, Change{Op: OpIssue, Record: b}); err != nil {
		t.Fatal(err)
	}
	if n := l.Pending(); n != 0 {
		t.Fatalf("after a commit: Pending() = %d, want 0", n)
	}

	stop := newStopAt("append")
	l.hook = stop.hook
	if err := l.Post(Change{Op: OpBind, Tier: "trial", Hash: a.Hash, Account: "acct-a"}); err != nil {
		t.Fatal(err)
	}
	stop.wait(t) // the writer took the binding and is about to append it
	if n := l.Pending(); n != 1 {
		t.Errorf("while its batch is written: Pending() = %d, want 1", n)
	}
	if err := l.Post(Change{Op: OpBind, Tier: "trial", Hash: b.Hash, Account: "acct-b"}); err != nil {
		t.Fatal(err)
	}
	if n := l.Pending(); n != 2 {
		t.Errorf("one written, one queued: Pending() = %d, want 2", n)
	}
	l.hook = nil
	close(stop.resume)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := l.Pending(); n != 0 {
		t.Errorf("after Flush: Pending() = %d, want 0", n)
	}
	for _, r := range []Record{a, b} {
		got, err := l.Get(ctx, r.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if got.Account == "" {
			t.Errorf("key %s: binding not in the ledger after Pending() = 0", r.ID)
		}
	}
}
