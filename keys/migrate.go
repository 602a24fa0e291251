package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// readLegacy reads a tier's PRODUCT_DIR/<tier>.json, the one-array file
// the ledger was before the journal; a missing file is an empty tier.
func (l *Ledger) readLegacy(tier string) (map[string]Record, error) {
	p := l.legacyPath(tier)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	recs := map[string]Record{}
	if len(bytes.TrimSpace(b)) == 0 {
		return recs, nil
	}
	var es []entry
	if err := json.Unmarshal(b, &es); err != nil {
		return nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	for i, e := range es {
		r := e.record()
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("keys: ledger %s: record %d: %w", p, i, err)
		}
		if r.Tier != tier {
			return nil, fmt.Errorf("keys: ledger %s: record %s has tier %q", p, r.ID, r.Tier)
		}
		recs[r.Hash] = r
	}
	return recs, nil
}

// Migrate turns every tier still kept in a legacy <tier>.json into a
// snapshot and a journal, under the ledger's locks. Every write does the
// same for the tier it touches; calling this at start-up just does it at
// once for all of them.
func (l *Ledger) Migrate(ctx context.Context) error {
	names, err := l.tierNames()
	if err != nil {
		return err
	}
	var todo []string
	for _, t := range names {
		if _, err := os.Stat(l.legacyPath(t)); err == nil {
			todo = append(todo, t)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	unlock, err := l.lockBoth(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	c := &commitRun{l: l, now: time.Now().UTC(), states: map[string]*tierState{}}
	for _, t := range todo {
		st, err := c.tier(t)
		if err != nil {
			return err
		}
		if _, err := os.Stat(l.legacyPath(t)); err == nil {
			// Migrated before (the snapshot exists) but the old file
			// was not renamed: rename it now.
			if err := l.startJournalLegacyLeft(t, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// startJournalLegacyLeft renames a legacy file left beside a tier that
// already has its snapshot and journal.
func (l *Ledger) startJournalLegacyLeft(tier string, _ *tierState) error {
	p := l.legacyPath(tier)
	if err := os.Rename(p, p+".migrated"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keys: ledger: %w", err)
	}
	return nil
}

// encodeEntries renders records as snapshot lines.
func encodeEntries(rs []Record) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(rs) * 320)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, r := range rs {
		if err := enc.Encode(toEntry(r)); err != nil {
			return nil, fmt.Errorf("keys: ledger encode: %w", err)
		}
	}
	return buf.Bytes(), nil
}
