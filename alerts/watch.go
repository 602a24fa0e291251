package alerts

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
)

// PoolViewer is what the watcher reads: the pool of the given tiers.
type PoolViewer interface {
	// ViewSlots is the pool without the bound-key counts (which read
	// every binding): the watcher polls it every few seconds.
	ViewSlots(ctx context.Context, tierNames []string, slotsOf func(string) int) (map[string][]accounts.AccountView, error)
}

// AccountLister lists the accounts' credentials (accounts.Store), read
// only for setup tokens' expiry.
type AccountLister interface {
	All(ctx context.Context) ([]accounts.Account, error)
}

// SetupTokenWarning is how long before a setup token's expiry the alert
// comes: such a token cannot be refreshed, only replaced.
const SetupTokenWarning = 7 * 24 * time.Hour

// Emitter takes events; *Sender is one.
type Emitter interface {
	Emit(e Event)
}

// DefaultWatchEvery is how often the watcher reads the pool.
const DefaultWatchEvery = 5 * time.Second

// Watcher finds events by comparing the pool's state from one read to the
// next: whatever changed it (a request, a probe, the operator, another
// replica) is seen the same way. The first read only sets the baseline,
// so a restart does not repeat old news.
type Watcher struct {
	Pool    PoolViewer
	Tiers   func() []string
	SlotsOf func(string) int
	Out     Emitter
	// Accounts, if set, lets the watcher warn of setup tokens that expire
	// within SetupTokenWarning.
	Accounts AccountLister
	Clock    clock.Clock
	Every    time.Duration
	// DownAfter failed reads in a row make "store down" (default 2).
	DownAfter int

	ready     chan struct{}
	readyOnce sync.Once
}

// snapshot is what the watcher compares.
type snapshot struct {
	bl       map[string]accounts.BlacklistEntry
	limited  map[string]time.Time
	cooling  map[string]time.Time
	tier     map[string]tierLoad
	acctTier map[string]string
	expiring map[string]time.Time // setup tokens within SetupTokenWarning of their expiry
}

type tierLoad struct{ used, total int }

// level: 0 below 90 %, 1 at ≥ 90 %, 2 full. A tier without capacity (no
// usable account) has no level: that is told by the accounts' own events.
func (l tierLoad) level() int {
	switch {
	case l.total <= 0:
		return 0
	case l.used >= l.total:
		return 2
	case l.used*10 >= l.total*9:
		return 1
	}
	return 0
}

// Ready is closed once the watcher has its baseline (tests wait on it).
func (w *Watcher) Ready() <-chan struct{} { return w.readyChan() }

func (w *Watcher) readyChan() chan struct{} {
	w.readyOnce.Do(func() { w.ready = make(chan struct{}) })
	return w.ready
}

// Run reads the pool every Every until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	ready := w.readyChan()
	every := w.Every
	if every <= 0 {
		every = DefaultWatchEvery
	}
	downAfter := w.DownAfter
	if downAfter <= 0 {
		downAfter = 2
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var prev *snapshot
	fails, down := 0, false
	var downSince time.Time
	for {
		cur, err := w.read(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			fails++
			if fails >= downAfter && !down {
				down, downSince = true, w.Clock.Now()
				w.Out.Emit(Event{Event: StoreDown, Text: "claude-route: the store (Redis) is not answering: requests are refused with 503 until it is back",
					Details: map[string]any{"error": err.Error()}})
			}
		default:
			fails = 0
			if down {
				down = false
				w.Out.Emit(Event{Event: StoreBack, Text: fmt.Sprintf("claude-route: the store (Redis) answers again after %s", w.Clock.Now().Sub(downSince).Round(time.Second)),
					Details: map[string]any{"down_seconds": int64(w.Clock.Now().Sub(downSince).Seconds())}})
			}
			if prev != nil {
				for _, e := range diff(prev, cur) {
					w.Out.Emit(e)
				}
			}
			prev = cur
			select {
			case <-ready:
			default:
				close(ready)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Watcher) read(ctx context.Context) (*snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	names := w.Tiers()
	view, err := w.Pool.ViewSlots(ctx, names, w.SlotsOf)
	if err != nil {
		return nil, err
	}
	now := w.Clock.Now()
	s := &snapshot{bl: map[string]accounts.BlacklistEntry{}, limited: map[string]time.Time{},
		cooling: map[string]time.Time{}, tier: map[string]tierLoad{}, acctTier: map[string]string{}}
	for _, t := range names {
		var load tierLoad
		for _, a := range view[t] {
			s.acctTier[a.Name] = t
			if a.Blacklist != nil {
				s.bl[a.Name] = *a.Blacklist
			} else {
				// Only usable accounts count: a blacklisted one's slots
				// are neither free nor served.
				load.total += a.SlotsTotal
				load.used += a.SlotsUsed
			}
			if a.LimitedTill != nil && a.LimitedTill.After(now) {
				s.limited[a.Name] = *a.LimitedTill
			}
			if a.CoolingTill != nil && a.CoolingTill.After(now) {
				s.cooling[a.Name] = *a.CoolingTill
			}
		}
		s.tier[t] = load
	}
	if w.Accounts != nil {
		all, err := w.Accounts.All(ctx)
		if err != nil {
			return nil, err
		}
		s.expiring = map[string]time.Time{}
		for _, a := range all {
			if a.SetupToken() && !a.ExpiresAt.IsZero() && a.ExpiresAt.Before(now.Add(SetupTokenWarning)) {
				s.expiring[a.Name] = a.ExpiresAt
			}
		}
	}
	return s, nil
}

// diff lists the events between two reads, in a stable order. A disabled
// account is the operator's own act, not news: it raises no event.
func diff(prev, cur *snapshot) []Event {
	var out []Event
	for _, name := range sortedKeys(cur.bl) {
		e := cur.bl[name]
		if _, was := prev.bl[name]; was || e.Reason == accounts.DisabledReason {
			continue
		}
		out = append(out, Event{Event: AccountBlacklisted, Account: name, Tier: cur.acctTier[name],
			Text:    fmt.Sprintf("claude-route: account %s (tier %s) was blacklisted: %s. Its keys move to other accounts.", name, cur.acctTier[name], e.Reason),
			Details: map[string]any{"reason": e.Reason, "since": e.Since.UTC()}, State: stateOf(e.Since)})
	}
	for _, name := range sortedKeys(prev.bl) {
		e := prev.bl[name]
		if _, still := cur.bl[name]; still || e.Reason == accounts.DisabledReason {
			continue
		}
		if _, exists := cur.acctTier[name]; !exists {
			continue // removed, not recovered
		}
		out = append(out, Event{Event: AccountRecovered, Account: name, Tier: cur.acctTier[name],
			Text:    fmt.Sprintf("claude-route: account %s (tier %s) is back in service", name, cur.acctTier[name]),
			Details: map[string]any{"was": e.Reason}, State: stateOf(e.Since)})
	}
	for _, name := range sortedKeys(cur.limited) {
		until := cur.limited[name]
		if p, was := prev.limited[name]; was && p.Equal(until) {
			continue
		}
		out = append(out, Event{Event: AccountLimited, Account: name, Tier: cur.acctTier[name],
			Text:    fmt.Sprintf("claude-route: account %s (tier %s) reached its upstream usage limit; it resets at %s", name, cur.acctTier[name], until.UTC().Format(time.RFC3339)),
			Details: map[string]any{"reset": until.UTC()}, State: stateOf(until)})
	}
	for _, name := range sortedKeys(cur.cooling) {
		if _, was := prev.cooling[name]; was {
			continue
		}
		until := cur.cooling[name]
		out = append(out, Event{Event: AccountCooling, Account: name, Tier: cur.acctTier[name],
			Text:    fmt.Sprintf("claude-route: account %s (tier %s) failed repeatedly (529/5xx/connection) and is cooling down until %s", name, cur.acctTier[name], until.UTC().Format(time.RFC3339)),
			Details: map[string]any{"until": until.UTC()}, State: stateOf(until)})
	}
	for _, name := range sortedKeys(cur.expiring) {
		if _, was := prev.expiring[name]; was {
			continue
		}
		at := cur.expiring[name]
		out = append(out, Event{Event: SetupTokenExpiring, Account: name, Tier: cur.acctTier[name],
			Text:    fmt.Sprintf("claude-route: account %s (tier %s) uses a setup token that cannot be refreshed and expires at %s: make a new one (claude setup-token) and run `claude-route account replace %s`", name, cur.acctTier[name], at.UTC().Format(time.RFC3339), name),
			Details: map[string]any{"expires_at": at.UTC()}, State: stateOf(at)})
	}
	for _, t := range sortedKeys(cur.tier) {
		l := cur.tier[t]
		if l.level() <= prev.tier[t].level() {
			continue
		}
		d := map[string]any{"slots_used": l.used, "slots_total": l.total}
		if l.level() == 2 {
			out = append(out, Event{Event: TierFull, Tier: t, Details: d,
				Text: fmt.Sprintf("claude-route: tier %s is full (%d/%d slots): new keys of the tier cannot be served; add an account", t, l.used, l.total)})
		} else {
			out = append(out, Event{Event: TierNearlyFull, Tier: t, Details: d,
				Text: fmt.Sprintf("claude-route: tier %s is at %d%% of its slots (%d/%d)", t, l.used*100/l.total, l.used, l.total)})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// stateOf names a state by the time it began or ends, as the store has it:
// every replica names the same state alike, so it is claimed once, and a
// new blacklisting (a new start) is a new state, sent even within the
// dedup period.
func stateOf(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
