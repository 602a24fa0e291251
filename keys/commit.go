package keys

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/claude-route/claude-route/internal/atomicfile"
)

// commitRun is one batch being applied: changes are checked against an
// overlay of the tiers' states, so a pending that fails leaves no trace.
type commitRun struct {
	l      *Ledger
	now    time.Time
	states map[string]*tierState // tiers made ready for appending
	order  []string              // tiers in the order first touched
	lines  map[string][]line     // phase 1: everything but move_out
	outs   map[string][]line     // phase 2: move_out, after the move_in is durable
	all    bool                  // every tier refreshed (for a change without a tier)
}

// commit applies and writes a batch under both locks (the writer's
// goroutine only). A pending whose changes do not apply gets its own
// error; an error returned here concerns the whole batch.
func (l *Ledger) commit(ctx context.Context, batch []*pending) error {
	unlock, err := l.lockBoth(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("keys: ledger: %w", err)
	}
	c := &commitRun{l: l, now: time.Now().UTC(), states: map[string]*tierState{},
		lines: map[string][]line{}, outs: map[string][]line{}}
	for _, p := range batch {
		p.err, p.out = nil, nil
		c.apply(p)
	}
	if err := c.write(); err != nil {
		// The states may be ahead of the files now: read them afresh.
		l.tiers = map[string]*tierState{}
		return err
	}
	// A journal that outgrew its snapshot is compacted after the callers
	// are answered, off the commit path (compact.go).
	l.planCompactions(c)
	return nil
}

// tier makes a tier ready for appending: up to date, with a journal of
// the snapshot's generation and no torn line at its end.
func (c *commitRun) tier(name string) (*tierState, error) {
	if st, ok := c.states[name]; ok {
		return st, nil
	}
	st, err := c.l.refresh(name)
	if err != nil {
		return nil, err
	}
	if st.off == 0 || st.stale {
		if err := c.l.startJournal(name, st); err != nil {
			delete(c.l.tiers, name)
			return nil, err
		}
	} else if st.torn {
		// A crashed append left half a line: cut it, or the next line
		// would be glued to it.
		if err := os.Truncate(c.l.journalPath(name), st.off); err != nil {
			delete(c.l.tiers, name)
			return nil, fmt.Errorf("keys: ledger %s: %w", c.l.journalPath(name), err)
		}
		st.torn = false
	}
	c.states[name] = st
	c.order = append(c.order, name)
	return st, nil
}

// findTier is the tier holding hash, for a change that does not say.
func (c *commitRun) findTier(hash string) (string, error) {
	if !c.all {
		names, err := c.l.tierNames()
		if err != nil {
			return "", err
		}
		for _, t := range names {
			if _, err := c.tier(t); err != nil {
				return "", err
			}
		}
		c.all = true
	}
	for _, t := range c.order {
		if _, ok := c.states[t].recs[hash]; ok {
			return t, nil
		}
	}
	return "", ErrNotFound
}

// apply checks p's changes on an overlay and, if all apply, makes them
// the tiers' state and queues their lines.
func (c *commitRun) apply(p *pending) {
	type slot struct{ tier, hash string }
	overlay := map[slot]*Record{} // nil: deleted
	get := func(tier, hash string) (Record, bool) {
		if r, ok := overlay[slot{tier, hash}]; ok {
			if r == nil {
				return Record{}, false
			}
			return *r, true
		}
		r, ok := c.states[tier].recs[hash]
		return r, ok
	}
	set := func(tier, hash string, r *Record) { overlay[slot{tier, hash}] = r }
	var lines, outs []struct {
		tier string
		ln   line
	}
	out := make([]Record, len(p.cs))
	for i, ch := range p.cs {
		if ch.At.IsZero() {
			ch.At = c.now
		}
		if ch.Op == OpIssue && ch.Tier == "" {
			ch.Tier = ch.Record.Tier
		}
		if ch.Tier == "" {
			t, err := c.findTier(ch.Hash)
			if err != nil {
				p.err = fmt.Errorf("keys: ledger: %s: %w", ID(ch.Hash), err)
				return
			}
			ch.Tier = t
		}
		if _, err := c.tier(ch.Tier); err != nil {
			p.err = err
			return
		}
		r, ok := get(ch.Tier, ch.Hash)
		if ch.Op == OpIssue {
			if err := ch.Record.validate(); err != nil {
				p.err = err
				return
			}
			if ch.Record.Tier != ch.Tier || ch.Record.Hash != ch.Hash && ch.Hash != "" {
				p.err = fmt.Errorf("keys: ledger: issue of %s names another tier or hash", ch.Record.ID)
				return
			}
			if ok {
				p.err = fmt.Errorf("keys: ledger already holds %s", ch.Record.ID)
				return
			}
			ch.Hash = ch.Record.Hash
			r = ch.Record
			set(ch.Tier, r.Hash, &r)
			lines = append(lines, struct {
				tier string
				ln   line
			}{ch.Tier, toLine(OpIssue, ch)})
			out[i] = r
			continue
		}
		if !ok {
			if ch.Op == OpArchive {
				continue // archived already
			}
			p.err = fmt.Errorf("keys: ledger: %s: %w", ID(ch.Hash), ErrNotFound)
			return
		}
		changed := true
		switch ch.Op {
		case OpBind:
			changed = r.Account != ch.Account
			r.Account = ch.Account
		case OpRevoke:
			changed = r.Status != StatusRevoked
			if changed {
				if ch.RevokedAt.IsZero() {
					ch.RevokedAt = ch.At
				}
				r.Status, r.RevokedAt = StatusRevoked, ch.RevokedAt.UTC()
			}
		case OpExtend, OpActivate:
			// An explicit expiry or the activation ends the wait for a first use.
			changed = !r.Expires.Equal(ch.Expires) || r.FirstUse != 0
			r.Expires = truncMillis(ch.Expires)
			r.FirstUse = 0
		case OpNote:
			changed = r.Note != ch.Note
			r.Note = ch.Note
		case OpBudget:
			changed = r.Budgets != ch.Budgets
			r.Budgets = ch.Budgets
		case OpArchive:
			set(ch.Tier, ch.Hash, nil)
		case OpMove:
			if err := checkTier(ch.To); err != nil {
				p.err = err
				return
			}
			if ch.To == ch.Tier {
				changed = false
				break
			}
			if _, err := c.tier(ch.To); err != nil {
				p.err = err
				return
			}
			set(ch.Tier, ch.Hash, nil)
			r.Tier = ch.To
			moved := r
			set(ch.To, ch.Hash, &moved)
			in := ch
			in.Record = r
			lines = append(lines, struct {
				tier string
				ln   line
			}{ch.To, toLine(opMoveIn, in)})
			outs = append(outs, struct {
				tier string
				ln   line
			}{ch.Tier, toLine(opMoveOut, ch)})
			out[i] = r
			continue
		default:
			p.err = fmt.Errorf("keys: ledger: unknown change %q", ch.Op)
			return
		}
		out[i] = r
		if !changed {
			continue
		}
		if ch.Op != OpArchive {
			set(ch.Tier, ch.Hash, &r)
		}
		lines = append(lines, struct {
			tier string
			ln   line
		}{ch.Tier, toLine(ch.Op, ch)})
	}
	// Every change applies: make the overlay the state.
	for s, r := range overlay {
		st := c.states[s.tier]
		if r == nil {
			delete(st.recs, s.hash)
		} else {
			st.recs[s.hash] = *r
		}
		st.sorted = nil
	}
	for _, x := range lines {
		c.lines[x.tier] = append(c.lines[x.tier], x.ln)
	}
	for _, x := range outs {
		c.outs[x.tier] = append(c.outs[x.tier], x.ln)
	}
	p.out = out
}

// write appends the batch's lines: one append and one fsync per tier,
// move_in lines before the move_out lines, so a crash between leaves a
// moved key in both tiers, never in neither.
func (c *commitRun) write() error {
	for _, phase := range []map[string][]line{c.lines, c.outs} {
		for _, t := range c.order {
			if len(phase[t]) == 0 {
				continue
			}
			b, err := encodeLines(phase[t])
			if err != nil {
				return err
			}
			if err := c.l.appendJournal(t, b); err != nil {
				return err
			}
			c.states[t].off += int64(len(b))
		}
	}
	return nil
}

func (l *Ledger) at(point string) {
	if l.hook != nil {
		l.hook(point)
	}
}

// appendJournal appends b to a tier's journal and fsyncs it.
func (l *Ledger) appendJournal(tier string, b []byte) error {
	p := l.journalPath(tier)
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	l.at("append")
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	l.at("appended") // written, not yet fsynced
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	return f.Close()
}

// startJournal gives a tier a journal of its snapshot's generation. A
// tier still in its legacy <tier>.json is migrated first: its records
// become snapshot 1, and the old file is renamed <tier>.json.migrated.
func (l *Ledger) startJournal(tier string, st *tierState) error {
	legacy := l.legacyPath(tier)
	_, lerr := os.Stat(legacy)
	hasLegacy := lerr == nil
	if st.gen == 0 && hasLegacy && len(st.recs) > 0 {
		if err := l.writeSnapshot(tier, 1, st); err != nil {
			return err
		}
	}
	l.at("snapshot")
	// A compaction that crashed before its new journal leaves lines past
	// what its snapshot covers: they start the new journal.
	var carry []byte
	if st.stale && st.carryTo > st.carryFrom {
		var err error
		if carry, err = l.readJournal(tier, st.carryFrom, st.carryTo); err != nil {
			return err
		}
	}
	if err := l.writeJournal(tier, st, carry); err != nil {
		return err
	}
	if hasLegacy {
		// Read once: from now on the snapshot and journal are the tier.
		if err := os.Rename(legacy, legacy+".migrated"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("keys: ledger: %w", err)
		}
	}
	return nil
}

// writeSnapshot writes a tier's records as snapshot gen (atomically).
func (l *Ledger) writeSnapshot(tier string, gen int64, st *tierState) error {
	buf := encodeHeader("snapshot", tier, gen, time.Now())
	body, err := encodeEntries(st.ordered())
	if err != nil {
		return err
	}
	buf = append(buf, body...)
	if err := atomicfile.Write(l.snapPath(tier), buf); err != nil {
		return fmt.Errorf("keys: ledger: %w", err)
	}
	st.gen, st.snapSize = gen, int64(len(buf))
	return nil
}
