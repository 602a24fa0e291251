package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/claude-route/claude-route/internal/atomicfile"
)

// Locker serializes ledger writes across replicas that share PRODUCT_DIR.
// unlock releases the lock; it must be called exactly once.
type Locker interface {
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// LedgerLock is the name under which ledger writes are serialized. One lock
// for every tier file: issuance is rare, and a single name keeps the rule
// "one writer at a time in PRODUCT_DIR" easy to check.
const LedgerLock = "cr:lock:ledger"

// Ledger is the durable list of issued keys, PRODUCT_DIR/<tier>.json, one
// JSON array per tier. Redis may be flushed; the ledger is what sync restores
// from. It never contains a raw key.
//
// Every change is a read-modify-write of one file, done under the in-process
// mutex and the distributed Locker, and published by an atomic rename, so
// concurrent writers never lose a record and readers never see half a file.
type Ledger struct {
	dir  string
	lock Locker
	// mu is a one-slot semaphore rather than a sync.Mutex so that waiting
	// for it honours the caller's context.
	mu chan struct{}
}

// NewLedger returns the ledger kept in dir. lock serializes writers across
// processes; nil means this process is the only writer.
func NewLedger(dir string, lock Locker) *Ledger {
	return &Ledger{dir: dir, lock: lock, mu: make(chan struct{}, 1)}
}

// Dir is the folder the ledger lives in.
func (l *Ledger) Dir() string { return l.dir }

// entry is a ledger record as written to the file.
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
		RevokedAt: optTime(r.RevokedAt),
	}
}

func (e entry) record() Record {
	return Record{
		Hash: e.Hash, ID: e.ID, Prefix: e.Prefix, Tier: e.Tier,
		Created: e.Created.UTC(), Expires: derefTime(e.Expires),
		Status: e.Status, Note: e.Note, Account: e.Account,
		RevokedAt: derefTime(e.RevokedAt),
	}
}

func (l *Ledger) path(tier string) string { return filepath.Join(l.dir, tier+".json") }

// All reads every tier file and returns their records sorted by creation.
// A file that cannot be read or parsed is an error naming its path: a
// record silently dropped here would be a paid key lost after a flush.
func (l *Ledger) All(ctx context.Context) ([]Record, error) {
	ents, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: ledger: %w", err)
	}
	var all []Record
	for _, e := range ents {
		name := e.Name()
		// Dot files are our temp files (or an editor's); they are not tiers.
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		recs, err := l.readTier(strings.TrimSuffix(name, ".json"))
		if err != nil {
			return nil, err
		}
		all = append(all, recs...)
	}
	sortRecords(all)
	return all, nil
}

func sortRecords(rs []Record) {
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].Created.Equal(rs[j].Created) {
			return rs[i].Created.Before(rs[j].Created)
		}
		return rs[i].ID < rs[j].ID
	})
}

// readTier parses one tier file; a missing file is an empty tier.
func (l *Ledger) readTier(tier string) ([]Record, error) {
	p := l.path(tier)
	if err := checkTier(tier); err != nil {
		return nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var es []entry
	if err := json.Unmarshal(b, &es); err != nil {
		return nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	recs := make([]Record, 0, len(es))
	for i, e := range es {
		r := e.record()
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("keys: ledger %s: record %d: %w", p, i, err)
		}
		if r.Tier != tier {
			return nil, fmt.Errorf("keys: ledger %s: record %s has tier %q", p, r.ID, r.Tier)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// withLock runs fn holding the in-process and the distributed lock.
func (l *Ledger) withLock(ctx context.Context, fn func() error) error {
	select {
	case l.mu <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("keys: ledger lock: %w", ctx.Err())
	}
	defer func() { <-l.mu }()
	if l.lock != nil {
		unlock, err := l.lock.Lock(ctx, LedgerLock)
		if err != nil {
			return fmt.Errorf("keys: ledger lock: %w", err)
		}
		defer unlock()
	}
	return fn()
}

// add appends a new record to its tier file.
func (l *Ledger) add(ctx context.Context, r Record) error {
	if err := r.validate(); err != nil {
		return err
	}
	return l.withLock(ctx, func() error {
		recs, err := l.readTier(r.Tier)
		if err != nil {
			return err
		}
		for _, x := range recs {
			if x.Hash == r.Hash {
				return fmt.Errorf("keys: ledger already holds %s", r.ID)
			}
		}
		return l.writeTier(ctx, r.Tier, append(recs, r))
	})
}

// update applies fn to the record with this hash and, if fn reports a
// change, writes the file back. tier narrows the search to one file; ""
// searches every tier. It returns the record as it now is, or ErrNotFound.
func (l *Ledger) update(ctx context.Context, tier, hash string, fn func(*Record) bool) (Record, error) {
	var out Record
	err := l.withLock(ctx, func() error {
		tiers := []string{tier}
		if tier == "" {
			var err error
			if tiers, err = l.tiers(); err != nil {
				return err
			}
		}
		for _, t := range tiers {
			recs, err := l.readTier(t)
			if err != nil {
				return err
			}
			for i := range recs {
				if recs[i].Hash != hash {
					continue
				}
				changed := fn(&recs[i])
				out = recs[i]
				if !changed {
					return nil
				}
				return l.writeTier(ctx, t, recs)
			}
		}
		return ErrNotFound
	})
	return out, err
}

// tiers lists the tier files present.
func (l *Ledger) tiers() ([]string, error) {
	ents, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: ledger: %w", err)
	}
	var ts []string
	for _, e := range ents {
		if n := e.Name(); !e.IsDir() && !strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".json") {
			ts = append(ts, strings.TrimSuffix(n, ".json"))
		}
	}
	return ts, nil
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

// writeTier replaces a tier file atomically: a temp file in the same folder
// (so rename stays on one file system), fsync, rename, fsync of the folder.
// A crash leaves either the old file or the new one, never a torn one.
func (l *Ledger) writeTier(ctx context.Context, tier string, recs []Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	es := make([]entry, len(recs))
	for i, r := range recs {
		es[i] = toEntry(r)
	}
	b, err := json.MarshalIndent(es, "", "  ")
	if err != nil {
		return fmt.Errorf("keys: ledger encode: %w", err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("keys: ledger: %w", err)
	}
	dst := l.path(tier)
	if err := atomicfile.Write(dst, b); err != nil {
		return fmt.Errorf("keys: ledger: %w", err)
	}
	return nil
}

// Archive moves records out of the live ledger: each is appended (and
// fsynced) to PRODUCT_DIR/archive/<tier>-<yyyy-mm>.jsonl, by the month its
// key ended (end(r)), and only then removed from its tier file. A crash
// in between leaves a record in both, never in neither.
func (l *Ledger) Archive(ctx context.Context, recs []Record, end func(Record) time.Time) error {
	if len(recs) == 0 {
		return nil
	}
	return l.withLock(ctx, func() error {
		adir := filepath.Join(l.dir, "archive")
		if err := os.MkdirAll(adir, 0o700); err != nil {
			return fmt.Errorf("keys: archive: %w", err)
		}
		lines := map[string][]byte{}
		drop := map[string]map[string]bool{} // tier → hashes
		for _, r := range recs {
			b, err := json.Marshal(toEntry(r))
			if err != nil {
				return fmt.Errorf("keys: archive: %w", err)
			}
			name := filepath.Join(adir, r.Tier+"-"+end(r).UTC().Format("2006-01")+".jsonl")
			lines[name] = append(append(lines[name], b...), '\n')
			if drop[r.Tier] == nil {
				drop[r.Tier] = map[string]bool{}
			}
			drop[r.Tier][r.Hash] = true
		}
		for name, b := range lines {
			if err := appendSync(name, b); err != nil {
				return fmt.Errorf("keys: archive: %w", err)
			}
		}
		for tier, hashes := range drop {
			cur, err := l.readTier(tier)
			if err != nil {
				return err
			}
			keep := cur[:0]
			for _, r := range cur {
				if !hashes[r.Hash] {
					keep = append(keep, r)
				}
			}
			if err := l.writeTier(ctx, tier, keep); err != nil {
				return err
			}
		}
		return nil
	})
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
