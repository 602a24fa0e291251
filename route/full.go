package route

import (
	"net/http"
	"sync"
	"time"
)

// Per-account concurrency: an account takes at most its cap of requests
// in flight at once on this replica ("max_concurrency" in its file, else
// the tier's "account_concurrency"; 0 is no cap). A request that finds
// its account full is served by another account of the tier (overflow,
// reason "full"), or refused with 503 when none can.

// ReasonFull is the overflow reason of a request whose account was full.
const ReasonFull = "full"

// inflight counts the requests in flight per capped account.
type inflight struct {
	mu sync.Mutex
	m  map[string]int
}

// capOf is the account's cap for c.
func (c *call) capOf() int {
	if c.acct.MaxConcurrency > 0 {
		return c.acct.MaxConcurrency
	}
	return c.AccountConcurrency
}

// takeSlot gives c a place on its current account, first giving back the
// place it held on another one. It reports false when the account is full.
func (r *Router) takeSlot(c *call) bool {
	if c.slot == c.acct.Name && c.slot != "" {
		return true // retried on the same account: already held
	}
	r.giveSlot(c)
	n := c.capOf()
	if n <= 0 {
		return true
	}
	f := &r.inflight
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[c.acct.Name] >= n {
		return false
	}
	if f.m == nil {
		f.m = map[string]int{}
	}
	f.m[c.acct.Name]++
	c.slot = c.acct.Name
	return true
}

// giveSlot gives back the place c holds, if any.
func (r *Router) giveSlot(c *call) {
	if c.slot == "" {
		return
	}
	f := &r.inflight
	f.mu.Lock()
	if f.m[c.slot]--; f.m[c.slot] <= 0 {
		delete(f.m, c.slot)
	}
	f.mu.Unlock()
	c.slot = ""
}

// accountFull is the refusal when the key's account is full and no other
// account can take the request.
func accountFull() error {
	return &Refusal{Status: http.StatusServiceUnavailable, Type: "overloaded_error", RetryAfter: time.Second,
		Msg: "The upstream account serving this key has too many requests in flight; please retry"}
}
