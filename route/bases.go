package route

import (
	"sync"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// Base URL health, per account and base on this replica. A base that
// could not be connected to, or answered 529 or 5xx before any body, is
// skipped with exponential backoff (baseBackoffMin doubling up to
// baseBackoffMax), so a dead primary no longer costs every request a dial
// of up to the dial timeout. When its backoff ends, one request tries it
// again first (the probe; the others keep skipping it for baseBackoffMin),
// and a base that answers is healthy again and preferred in its configured
// order. When every base of an account is backing off, they are all tried
// in order anyway: a request is never refused for it.
const (
	baseBackoffMin = 10 * time.Second
	baseBackoffMax = 5 * time.Minute
)

type baseHealth struct {
	clock clock.Clock
	mu    sync.Mutex
	m     map[baseKey]*baseState // only bases that failed
}

type baseKey struct{ account, base string }

type baseState struct {
	fails int       // failures in a row
	until time.Time // skipped until then
}

func newBaseHealth(c clock.Clock) *baseHealth {
	return &baseHealth{clock: c, m: map[baseKey]*baseState{}}
}

// order returns the bases to try now, in their configured order: those
// not backing off, and a base whose backoff has ended (claimed for this
// request as its probe). All of them when none is usable.
func (h *baseHealth) order(account string, bases []string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.m) == 0 || len(bases) < 2 {
		return bases
	}
	now := h.clock.Now()
	var out []string
	for i, b := range bases {
		st := h.m[baseKey{account, b}]
		switch {
		case st == nil:
		case now.Before(st.until):
			if out == nil {
				out = append(make([]string, 0, len(bases)), bases[:i]...)
			}
			continue
		default:
			// The probe: this request tries it; the others skip it meanwhile.
			st.until = now.Add(baseBackoffMin)
		}
		if out != nil {
			out = append(out, b)
		}
	}
	if len(out) == 0 { // none skipped, or all
		return bases
	}
	return out
}

// failed records a failure of base: it backs off for twice as long as the
// last time, from baseBackoffMin up to baseBackoffMax. A nil baseHealth
// (an account with one base) records nothing.
func (h *baseHealth) failed(account, base string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	k := baseKey{account, base}
	st := h.m[k]
	if st == nil {
		st = &baseState{}
		h.m[k] = st
	}
	st.fails++
	d := baseBackoffMin
	for i := 1; i < st.fails && d < baseBackoffMax; i++ {
		d *= 2
	}
	if d > baseBackoffMax {
		d = baseBackoffMax
	}
	st.until = h.clock.Now().Add(d)
}

// ok records that base answered: healthy again.
func (h *baseHealth) ok(account, base string) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.m) > 0 {
		delete(h.m, baseKey{account, base})
	}
}
