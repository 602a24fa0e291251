package refresh

import (
	"sort"
	"time"
)

// planItem is one account as the planner sees it.
type planItem struct {
	name      string
	expires   time.Time
	notBefore time.Time // cooldown or exhausted attempts: not earlier than this
}

// plan assigns each account the time of its next scheduled refresh.
//
// Refreshing every account Lead before it expires fails when many expire
// together: the global lock lets one refresh through per GlobalLock, so
// the later ones would run past their expiry. Instead the accounts are
// sorted by expiry and walked backwards: each gets the latest slot that is
// at most expiry−Lead and at least spacing before the next account's slot.
// Accounts expiring at one moment thus get slots spacing apart, all before
// that moment. A forward pass then moves slots that fell in the past (or
// inside the current global lock) to the earliest possible time, keeping
// the spacing.
func plan(now, globalUntil time.Time, items []planItem, lead, spacing time.Duration) map[string]time.Time {
	out := make(map[string]time.Time, len(items))
	// Accounts held back (cooldown, attempts used up) wait for their own
	// time and take no place in the spaced walk: they must not push the
	// accounts that can still be refreshed past their expiry.
	var sorted []planItem
	for _, it := range items {
		if it.notBefore.After(now) {
			s := it.expires.Add(-lead)
			if it.notBefore.After(s) {
				s = it.notBefore
			}
			out[it.name] = s
			continue
		}
		sorted = append(sorted, it)
	}
	sort.Slice(sorted, func(i, j int) bool {
		if !sorted[i].expires.Equal(sorted[j].expires) {
			return sorted[i].expires.Before(sorted[j].expires)
		}
		return sorted[i].name < sorted[j].name
	})
	slots := make([]time.Time, len(sorted))
	var next time.Time
	for i := len(sorted) - 1; i >= 0; i-- {
		s := sorted[i].expires.Add(-lead)
		if !next.IsZero() && next.Add(-spacing).Before(s) {
			s = next.Add(-spacing)
		}
		slots[i], next = s, s
	}
	lo := now
	if globalUntil.After(lo) {
		lo = globalUntil
	}
	for i, it := range sorted {
		if slots[i].Before(lo) {
			slots[i] = lo
		}
		lo = slots[i].Add(spacing)
		out[it.name] = slots[i]
	}
	return out
}
