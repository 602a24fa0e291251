package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/claude-route/claude-route/internal/atomicfile"
)

// Compaction runs off the commit path. A commit that leaves a journal
// bigger than its snapshot (and compactMin) hands the tier's records as of
// that journal offset to a compactor goroutine and answers its callers at
// once. The compactor encodes and writes the new snapshot without any lock
// (the slow part: tens of MB at 100,000 keys), then, under both locks,
// renames it in and starts the next journal with the lines appended
// meanwhile (by this replica or another). So a commit never waits for a
// compaction's big write, only for the short rename at its end.
//
// The snapshot's header says which part of the previous journal it holds
// ("covers": its byte offset). A crash between the snapshot's rename and
// the new journal's leaves snapshot gen+1 and journal gen: readers replay
// that journal's lines past the offset, and the next writer carries them
// into journal gen+1.

// compactMin is the journal size below which it is never compacted: a
// small tier would otherwise rewrite its snapshot every few changes.
const compactMin = 64 << 10

// compaction is a tier's records as of byte covers of journal gen.
type compaction struct {
	tier   string
	gen    int64
	covers int64
	recs   []Record // a copy: the compactor sorts it
}

// planCompactions notes the tiers of a commit due for compaction (l.mu
// and the lock held, writer goroutine): their records are copied now, as
// of the journal's end.
func (l *Ledger) planCompactions(c *commitRun) {
	if l.compacting.Load() {
		return // one at a time; a later commit finds the tier still due
	}
	for _, t := range c.order {
		st := c.states[t]
		if st.off <= compactMin || st.off <= st.snapSize {
			continue
		}
		recs := make([]Record, 0, len(st.recs))
		for _, r := range st.recs {
			recs = append(recs, r)
		}
		l.due = append(l.due, compaction{tier: t, gen: st.gen, covers: st.off, recs: recs})
	}
}

// startCompactions hands the planned compactions to a compactor goroutine
// (writer goroutine, right after the commit). Close waits for it.
func (l *Ledger) startCompactions() {
	if len(l.due) == 0 || !l.compacting.CompareAndSwap(false, true) {
		return
	}
	due := l.due
	l.due = nil
	l.compactors.Add(1)
	go func() {
		defer l.compactors.Done()
		defer l.compacting.Store(false)
		for _, p := range due {
			if err := l.compactTier(p); err != nil && l.errLog != nil {
				l.errLog(err) // the changes are durable in the journal anyway
			}
		}
	}()
}

// compactTier writes p as snapshot gen+1 and, if the tier is still at
// generation gen, makes it the tier's snapshot with a journal of gen+1
// holding the lines past p.covers.
func (l *Ledger) compactTier(p compaction) error {
	sortRecords(p.recs)
	buf := encodeSnapshotHeader(p.tier, p.gen+1, p.covers, time.Now())
	body, err := encodeEntries(p.recs)
	if err != nil {
		return err
	}
	buf = append(buf, body...)
	tmp, err := writeTemp(l.snapPath(p.tier), buf)
	if err != nil {
		return fmt.Errorf("keys: ledger compaction: %w", err)
	}
	defer os.Remove(tmp) // a no-op once renamed
	l.at("compact-written")

	ctx, cancel := context.WithTimeout(l.w.base, commitTimeout)
	defer cancel()
	unlock, err := l.lockBoth(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := l.refresh(p.tier)
	if err != nil {
		return err
	}
	if st.gen != p.gen || st.stale || st.off < p.covers {
		return nil // another replica compacted meanwhile
	}
	tail, err := l.readJournal(p.tier, p.covers, st.off)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, l.snapPath(p.tier)); err != nil {
		return fmt.Errorf("keys: ledger compaction: %w", err)
	}
	syncDir(l.dir)
	st.gen, st.snapSize = p.gen+1, int64(len(buf))
	l.at("compacted")
	if err := l.writeJournal(p.tier, st, tail); err != nil {
		delete(l.tiers, p.tier) // read afresh: the files say what happened
		return err
	}
	return nil
}

// writeJournal replaces the tier's journal with an empty one of st.gen
// followed by tail (complete lines carried over from the previous one).
func (l *Ledger) writeJournal(tier string, st *tierState, tail []byte) error {
	h := encodeHeader("journal", tier, st.gen, time.Now())
	if err := atomicfile.Write(l.journalPath(tier), append(h, tail...)); err != nil {
		return fmt.Errorf("keys: ledger: %w", err)
	}
	st.off, st.stale, st.torn = int64(len(h)+len(tail)), false, false
	st.carryFrom, st.carryTo = 0, 0
	return nil
}

// readJournal returns the journal's bytes [from, to).
func (l *Ledger) readJournal(tier string, from, to int64) ([]byte, error) {
	if to <= from {
		return nil, nil
	}
	p := l.journalPath(tier)
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	defer f.Close()
	b := make([]byte, to-from)
	if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	return b, nil
}

// writeTemp writes data to a fsynced temp file beside path (a dot file:
// never taken for a tier) and returns its name.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// waitCompactions waits for a running compaction (tests).
func (l *Ledger) waitCompactions() { l.compactors.Wait() }
