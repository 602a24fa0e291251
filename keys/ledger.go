package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Locker serializes ledger writes across replicas that share PRODUCT_DIR.
// unlock releases the lock; it must be called exactly once.
type Locker interface {
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// LedgerLock is the name under which ledger writes are serialized. One lock
// for every tier's files: a commit holds it for one append and one fsync
// per tier it touches, and a single name keeps the rule "one writer at a
// time in PRODUCT_DIR" easy to check.
const LedgerLock = "cr:lock:ledger"

// Ledger is the durable list of issued keys: per tier, a snapshot and an
// append-only journal of changes in PRODUCT_DIR (journal.go; DESIGN.md,
// "The ledger"). Redis may be flushed; the ledger is what sync restores
// from. It never contains a raw key.
//
// Each replica keeps the ledger's records in memory and brings them up to
// date by reading only what was appended since it last looked, so the
// cost of a change does not depend on the number of keys. Changes are
// written by one writer goroutine per Ledger (writer.go), which gathers
// what arrived while it was busy into one append and one fsync per tier,
// under the in-process mutex and the distributed Locker.
type Ledger struct {
	dir  string
	lock Locker
	// mu is a one-slot semaphore rather than a sync.Mutex so that waiting
	// for it honours the caller's context. It guards tiers and the files.
	mu    chan struct{}
	tiers map[string]*tierState

	w writer
	// due are compactions planned by the last commit (writer goroutine);
	// compacting is set while a compactor runs, compactors waits for it.
	due        []compaction
	compacting atomic.Bool
	compactors sync.WaitGroup
	errLog     func(error) // where the writer reports posted changes it could not write
	// hook, if set, is called at named points of a commit (crash tests).
	hook func(point string)
}

// tierState is one tier's records as of a point in its journal.
type tierState struct {
	gen      int64 // generation of the snapshot and journal read
	off      int64 // journal bytes applied; 0: no journal file yet
	snapSize int64
	torn     bool // a torn line follows off (a crashed append)
	stale    bool // the journal predates the snapshot (compaction crashed)
	// carryFrom, carryTo: a stale journal's lines past what the snapshot
	// covers, which the next journal starts with.
	carryFrom, carryTo int64
	recs               map[string]Record
	sorted             []Record // recs by creation, nil when out of date
}

// NewLedger returns the ledger kept in dir. lock serializes writers across
// processes; nil means this process is the only writer.
func NewLedger(dir string, lock Locker) *Ledger {
	l := &Ledger{dir: dir, lock: lock, mu: make(chan struct{}, 1), tiers: map[string]*tierState{}}
	l.w.init()
	return l
}

// OnError sets where the writer reports changes posted without a waiter
// (Post) that it could not write even after retrying.
func (l *Ledger) OnError(fn func(error)) { l.errLog = fn }

// Dir is the folder the ledger lives in.
func (l *Ledger) Dir() string { return l.dir }

// entry is a ledger record as written to a snapshot or a journal line.
type entry struct {
	Hash      string     `json:"hash"`
	ID        string     `json:"id"`
	Prefix    string     `json:"prefix"`
	Tier      string     `json:"tier"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires"` // null: never
	Status    string     `json:"status"`
	Note      string     `json:"note"`
	Account   string     `json:"account"`
	RevokedAt *time.Time `json:"revoked_at"` // null: not revoked
	// FirstUseMS is the validity in ms that starts at the key's first use
	// (absent: none, or already activated).
	FirstUseMS int64 `json:"first_use_validity_ms,omitempty"`
	// Budgets are the key's own budgets (absent: the tier's).
	Budgets *budgetEntry `json:"budgets,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func toEntry(r Record) entry {
	return entry{
		Hash: r.Hash, ID: r.ID, Prefix: r.Prefix, Tier: r.Tier,
		Created: r.Created.UTC(), Expires: optTime(r.Expires),
		Status: r.Status, Note: r.Note, Account: r.Account,
		RevokedAt:  optTime(r.RevokedAt),
		FirstUseMS: r.FirstUse.Milliseconds(),
		Budgets:    toBudgetEntry(r.Budgets),
	}
}

func (e entry) record() Record {
	return Record{
		Hash: e.Hash, ID: e.ID, Prefix: e.Prefix, Tier: e.Tier,
		Created: e.Created.UTC(), Expires: derefTime(e.Expires),
		Status: e.Status, Note: e.Note, Account: e.Account,
		RevokedAt: derefTime(e.RevokedAt),
		FirstUse:  time.Duration(max(e.FirstUseMS, 0)) * time.Millisecond,
		Budgets:   e.Budgets.budgets(),
	}
}

// acquire takes the in-process mutex.
func (l *Ledger) acquire(ctx context.Context) error {
	select {
	case l.mu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("keys: ledger: %w", ctx.Err())
	}
}

func (l *Ledger) release() { <-l.mu }

// lockBoth takes the ledger's two locks, the in-process mutex and then the
// cross-replica one (LedgerLock, when the ledger has a Locker), as every
// writer of the files does; unlock releases both.
func (l *Ledger) lockBoth(ctx context.Context) (unlock func(), err error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	if l.lock == nil {
		return l.release, nil
	}
	unlockShared, err := l.lock.Lock(ctx, LedgerLock)
	if err != nil {
		l.release()
		return nil, fmt.Errorf("keys: ledger lock: %w", err)
	}
	return func() {
		unlockShared()
		l.release()
	}, nil
}

// tierNames lists the tiers that have files in the folder: a snapshot, a
// journal or a legacy <tier>.json not migrated yet.
func (l *Ledger) tierNames() ([]string, error) {
	ents, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: ledger: %w", err)
	}
	seen := map[string]bool{}
	var ts []string
	for _, e := range ents {
		n := e.Name()
		// Dot files are our temp files (or an editor's); they are not tiers.
		if e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		var t string
		for _, suf := range []string{snapSuffix, journalSuffix, legacySuffix} {
			if s, ok := strings.CutSuffix(n, suf); ok {
				t = s
				break
			}
		}
		if t == "" || seen[t] {
			continue
		}
		if err := checkTier(t); err != nil {
			return nil, fmt.Errorf("keys: ledger %s: %w", filepath.Join(l.dir, n), err)
		}
		seen[t] = true
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts, nil
}

// refresh brings a tier's state up to date with its files (l.mu held):
// the lines appended since the last look, or the whole tier when a
// compaction started a new generation.
func (l *Ledger) refresh(tier string) (*tierState, error) {
	if err := checkTier(tier); err != nil {
		return nil, fmt.Errorf("keys: ledger: %w", err)
	}
	if st := l.tiers[tier]; st != nil && st.off > 0 && !st.stale {
		gen, off, torn, err := l.tailJournal(tier, st.gen, st.off, st.recs)
		if err != nil {
			delete(l.tiers, tier)
			return nil, err
		}
		if gen == st.gen {
			if off != st.off {
				st.sorted = nil
			}
			st.off, st.torn = off, torn
			return st, nil
		}
	}
	st, err := l.load(tier)
	if err != nil {
		delete(l.tiers, tier)
		return nil, err
	}
	l.tiers[tier] = st
	return st, nil
}

// load reads a tier whole: snapshot, then journal. A compaction by another
// process between the two reads shows as a journal newer than the
// snapshot, and the read starts over.
func (l *Ledger) load(tier string) (*tierState, error) {
	for range 10 {
		gen, covers, size, recs, err := l.readSnapshot(tier)
		if err != nil {
			return nil, err
		}
		jgen, off, torn, err := l.tailJournal(tier, gen, 0, recs)
		if err != nil {
			return nil, err
		}
		switch {
		case jgen == gen:
			return &tierState{gen: gen, off: off, snapSize: size, torn: torn, recs: recs}, nil
		case jgen == -1 && gen == 0:
			// Neither file: a new tier, or one still in the legacy file.
			recs, err := l.readLegacy(tier)
			if err != nil {
				return nil, err
			}
			return &tierState{recs: recs}, nil
		case jgen == gen-1 && covers > 0:
			// A compaction renamed its snapshot in and has not (or never
			// will: it crashed) started the new journal: the old journal's
			// lines past what the snapshot covers still count.
			g, off, _, err := l.tailJournal(tier, jgen, covers, recs)
			if err != nil {
				return nil, err
			}
			if g != jgen {
				continue // the new journal came meanwhile: read again
			}
			return &tierState{gen: gen, snapSize: size, stale: true, carryFrom: covers, carryTo: off, recs: recs}, nil
		case jgen < gen:
			// No journal, or one a crashed compaction already folded into
			// the snapshot: the snapshot is the whole tier.
			return &tierState{gen: gen, snapSize: size, stale: jgen >= 0, recs: recs}, nil
		}
		// jgen > gen: the snapshot read predates the journal read.
	}
	return nil, fmt.Errorf("keys: ledger %s: files keep changing under the read", tier)
}

// All returns every tier's records sorted by creation. A file that cannot
// be read or parsed is an error naming its path: a record silently
// dropped here would be a paid key lost after a flush.
func (l *Ledger) All(ctx context.Context) ([]Record, error) {
	var all []Record
	err := l.view(ctx, func(tiers []*tierState) {
		n := 0
		for _, st := range tiers {
			n += len(st.recs)
		}
		all = make([]Record, 0, n)
		for _, st := range tiers {
			all = append(all, st.ordered()...)
		}
	})
	if err != nil {
		return nil, err
	}
	sortRecords(all)
	return all, nil
}

// view runs fn on every tier's up-to-date state, l.mu held. fn may keep a
// tier's ordered() slice: it is replaced when the tier changes, never
// changed in place; it must not keep the states themselves.
func (l *Ledger) view(ctx context.Context, fn func([]*tierState)) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	names, err := l.tierNames()
	if err != nil {
		return err
	}
	sts := make([]*tierState, 0, len(names))
	for _, t := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := l.refresh(t)
		if err != nil {
			return err
		}
		sts = append(sts, st)
	}
	fn(sts)
	return nil
}

// ordered is the tier's records by creation, cached until they change.
func (st *tierState) ordered() []Record {
	if st.sorted == nil || len(st.sorted) != len(st.recs) {
		s := make([]Record, 0, len(st.recs))
		for _, r := range st.recs {
			s = append(s, r)
		}
		sortRecords(s)
		st.sorted = s
	}
	return st.sorted
}

func sortRecords(rs []Record) {
	sort.SliceStable(rs, func(i, j int) bool { return recordBefore(rs[i], rs[j]) })
}

func recordBefore(a, b Record) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.ID < b.ID
}

// Get returns the ledger's record of a key hash, or ErrNotFound.
func (l *Ledger) Get(ctx context.Context, hash string) (Record, error) {
	var (
		out   Record
		found bool
	)
	err := l.view(ctx, func(sts []*tierState) {
		for _, st := range sts {
			if r, ok := st.recs[hash]; ok {
				out, found = r, true
				return
			}
		}
	})
	if err != nil {
		return Record{}, err
	}
	if !found {
		return Record{}, ErrNotFound
	}
	return out, nil
}

// find returns the first ledger record that matches, or ErrNotFound.
func (l *Ledger) find(ctx context.Context, match func(Record) bool) (Record, error) {
	all, err := l.All(ctx)
	if err != nil {
		return Record{}, err
	}
	for _, r := range all {
		if match(r) {
			return r, nil
		}
	}
	return Record{}, ErrNotFound
}

// Archive moves records out of the live ledger: each is appended (and
// fsynced) to PRODUCT_DIR/archive/<tier>-<yyyy-mm>.jsonl, by the month its
// key ended (end(r)), and only then an archive change takes it out of its
// tier. A crash in between leaves a record in both, never in neither.
func (l *Ledger) Archive(ctx context.Context, recs []Record, end func(Record) time.Time) error {
	if len(recs) == 0 {
		return nil
	}
	if err := l.appendArchive(recs, end); err != nil {
		return err
	}
	cs := make([]Change, len(recs))
	for i, r := range recs {
		cs[i] = Change{Op: OpArchive, Tier: r.Tier, Hash: r.Hash}
	}
	_, err := l.Commit(ctx, cs...)
	return err
}

// appendArchive appends records to their archive files and fsyncs them.
func (l *Ledger) appendArchive(recs []Record, end func(Record) time.Time) error {
	adir := filepath.Join(l.dir, "archive")
	if err := os.MkdirAll(adir, 0o700); err != nil {
		return fmt.Errorf("keys: archive: %w", err)
	}
	lines := map[string][]byte{}
	var names []string
	for _, r := range recs {
		b, err := json.Marshal(toEntry(r))
		if err != nil {
			return fmt.Errorf("keys: archive: %w", err)
		}
		name := filepath.Join(adir, r.Tier+"-"+end(r).UTC().Format("2006-01")+".jsonl")
		if _, ok := lines[name]; !ok {
			names = append(names, name)
		}
		lines[name] = append(append(lines[name], b...), '\n')
	}
	for _, name := range names {
		if err := appendSync(name, lines[name]); err != nil {
			return fmt.Errorf("keys: archive: %w", err)
		}
	}
	return nil
}

func appendSync(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// TierRecords returns one tier's records sorted by creation.
func (l *Ledger) TierRecords(ctx context.Context, tier string) ([]Record, error) {
	if err := l.acquire(ctx); err != nil {
		return nil, err
	}
	defer l.release()
	st, err := l.refresh(tier)
	if err != nil {
		return nil, err
	}
	return slices.Clone(st.ordered()), nil
}
