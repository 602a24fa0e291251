package tiers

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Live is the product table in use. TIERS_FILE is re-read by Reload (a
// sync, SIGHUP) and the new table replaces the old one whole, so a
// request sees one table or the other, never a mix; a file that does not
// load leaves the old table in place. Its methods are Table's, read from
// the table current at the call.
type Live struct {
	path string
	cur  atomic.Pointer[Table]

	mu   sync.Mutex // one Reload at a time
	last []byte     // the file's bytes behind cur (nil: the built-in table)
}

// NewLive serves t; path, when set, is the file Reload reads.
func NewLive(t *Table, path string) *Live {
	l := &Live{path: path}
	if path != "" {
		// The bytes t came from, so that a Reload of an unchanged file says so.
		l.last, _ = os.ReadFile(path)
	}
	l.cur.Store(t)
	return l
}

// Load returns the current table. A caller that reads several things of
// one request (a tier and its window) keeps the table Load gave it.
func (l *Live) Load() *Table { return l.cur.Load() }

// Path is the file Reload reads ("" for the built-in table).
func (l *Live) Path() string { return l.path }

// Reload re-reads the file. changed reports a new table in service; an
// error keeps the old one. Without a file it does nothing.
func (l *Live) Reload() (changed bool, err error) {
	if l.path == "" {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := os.ReadFile(l.path)
	if err != nil {
		return false, fmt.Errorf("tiers file: %w; the previous table stays in service", err)
	}
	if bytes.Equal(b, l.last) {
		return false, nil
	}
	t, err := Parse(b)
	if err != nil {
		return false, fmt.Errorf("tiers file %s: %w; the previous table stays in service", l.path, err)
	}
	l.cur.Store(t)
	l.last = b
	return true, nil
}

// The table's methods, on the current table.

// Get is Table.Get.
func (l *Live) Get(name string) (*Tier, bool) { return l.Load().Get(name) }

// Names is Table.Names.
func (l *Live) Names() []string { return l.Load().Names() }

// FamilyOf is Table.FamilyOf.
func (l *Live) FamilyOf(model string) string { return l.Load().FamilyOf(model) }

// Resolve is Table.Resolve.
func (l *Live) Resolve(model string) string { return l.Load().Resolve(model) }

// ModelsFor is Table.ModelsFor.
func (l *Live) ModelsFor(tr *Tier) []Model { return l.Load().ModelsFor(tr) }

// PriceOf is Table.PriceOf.
func (l *Live) PriceOf(model string) (Price, bool) { return l.Load().PriceOf(model) }

// ModelCost is Table.ModelCost.
func (l *Live) ModelCost(model string, n Tokens) (float64, bool) { return l.Load().ModelCost(model, n) }

// Cost is Table.Cost.
func (l *Live) Cost(family string, n Tokens) (float64, bool) { return l.Load().Cost(family, n) }

// UsageModel is Table.UsageModel.
func (l *Live) UsageModel(model string, input int64) string {
	return l.Load().UsageModel(model, input)
}
