// Package route is the attempt loop of a request: it sends the admitted
// request to its account, judges what came back, and moves it (to the
// account's next base URL, to another account of the tier, or once more
// with a fresh credential) only as the retry policy (policy.go) allows.
// It keeps the pool's passive health (failures, limits, blacklist) and
// relays the answer. It knows nothing of keys or quotas: the caller
// settles those from the one Outcome.
package route

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/refresh"
	"github.com/claude-route/claude-route/relay"
)

// Pool is the account pool as routing uses it.
type Pool interface {
	QueueOverflow(ctx context.Context, pipe redis.Pipeliner, tier, from string, mark accounts.OverflowMark) *accounts.OverflowCmd
	Limit(ctx context.Context, account string, until time.Time) error
	Fail(ctx context.Context, account, by string) (time.Time, error)
	Succeeded(ctx context.Context, account string) error
	Blacklist(ctx context.Context, account, reason string) error
}

// Accounts reads upstream credentials.
type Accounts interface {
	QueueGet(ctx context.Context, pipe redis.Pipeliner, name string) *redis.MapStringStringCmd
	Get(ctx context.Context, name string) (accounts.Account, error)
}

// Refresher renews OAuth tokens.
type Refresher interface {
	RefreshNow(ctx context.Context, name, seenAccess string) (refresh.Creds, error)
}

// UtilObserver takes an answer's rate-limit headers; it never blocks.
type UtilObserver interface {
	ObserveHeaders(account string, h map[string][]string, at time.Time)
}

// Metrics are the routing figures the caller exports.
type Metrics interface {
	Overflowed(tier, reason string)
	UpstreamHeaders(tier string, d time.Duration)
	Streams(delta int)
}

// Pipeliner opens a pipeline (a redis client).
type Pipeliner interface {
	Pipeline() redis.Pipeliner
}

// Deps are the router's collaborators; Refresher and Util may be nil.
type Deps struct {
	Relay     *relay.Relay
	Redis     Pipeliner
	Pool      Pool
	Accounts  Accounts
	Refresher Refresher
	Util      UtilObserver
	Metrics   Metrics
	// Forget drops cached account records and pool state: called after
	// the router changed them (a refresh, a failure, a blacklist).
	Forget func()
	Clock  clock.Clock
	Log    *logrus.Logger
}

// Router runs requests' attempt loops. Its background writes (account
// health) are awaited by Wait.
type Router struct {
	d     Deps
	peers tierPeers
	bases *baseHealth // base URLs backing off (bases.go)
	// inflight counts requests on accounts with a concurrency cap (full.go).
	inflight inflight
	bg       sync.WaitGroup
}

// New returns a router.
func New(d Deps) *Router {
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.Forget == nil {
		d.Forget = func() {}
	}
	return &Router{d: d, bases: newBaseHealth(d.Clock)}
}

// Wait waits for the background account writes started so far.
func (r *Router) Wait() { r.bg.Wait() }

// Cut ends every upstream call in flight with relay.ErrShutdown: the
// server's grace period is over (streams end with an SSE error event).
func (r *Router) Cut() { r.d.Relay.Cut() }

// Request is what routing needs of one admitted request.
type Request struct {
	// In gives the path, query and headers sent upstream.
	In   *http.Request
	Body []byte
	// Tier is the key's tier; Overflows whether it may borrow another
	// account of it for one request.
	Tier      string
	Overflows bool
	// AccountConcurrency is the tier's default cap of requests in flight
	// per account on this replica (0: none); an account file's
	// max_concurrency wins (full.go).
	AccountConcurrency int
	// Key is the key's hash: the pool counts an account's failures per
	// key, so one key's failing requests never cool an account for all.
	Key string
	// Account and State are the bound account and its pool state as the
	// admission read them.
	Account accounts.Account
	State   accounts.State
	// Rebind moves the key off its bound account, which was found dead,
	// and returns the account it is bound to now. Its error is returned
	// as Outcome.Refused as is.
	Rebind func(ctx context.Context) (accounts.Account, error)
	// KeyID names the key in log lines (with Tier); the fields are built
	// only when a line is written (logFields), not for every request.
	KeyID string
	// Hooks act on the relayed answer (relay.Hooks).
	Hooks relay.Hooks
}

// Outcome is how a request ended upstream. Exactly one of three: Refused
// (the caller answers with its own error; nothing was written), Result
// (the upstream's answer was relayed) or Gone (the client left before the
// upstream answered). It is small: a stream runs below the frame that
// holds it.
type Outcome struct {
	Refused error
	Result  *relay.Result
	Gone    bool
	// Account names the account that served, or was tried last.
	Account string
}

// Refusal is the proxy's own answer when the upstream produced none to
// relay, in Anthropic's error vocabulary.
type Refusal struct {
	Status     int
	Type       string
	Msg        string
	RetryAfter time.Duration
	// NoRetry: waiting a moment cannot fix it (x-should-retry: false).
	NoRetry bool
	Cause   error
}

func (e *Refusal) Error() string { return e.Msg }
func (e *Refusal) Unwrap() error { return e.Cause }

// call is one request's routing state, on the heap: the frames a stream
// runs under stay small (the request goroutine keeps its stack for the
// stream's whole life).
type call struct {
	*Request
	r          *Router
	acct       accounts.Account
	bound      string // the key's account (acct may be an overflow one)
	state      accounts.State
	overflowed bool
	retried    bool
	att        relay.Attempt // the attempt to relay
	hooks      relay.Hooks
	sse        bool
	slot       string // the account whose concurrency place c holds (full.go)
}

// Do routes req: sends it, judges, moves it as the policy allows (all
// before a byte is written), then relays the answer to w. A stream runs
// under Do's frame, which stays small: the request goroutine keeps its
// stack for the stream's whole life.
func (r *Router) Do(ctx context.Context, w http.ResponseWriter, req *Request) Outcome {
	c, err := r.start(ctx, req)
	if err != nil || c.att.Kind == relay.Abandoned {
		r.giveSlot(c)
		return Outcome{Refused: err, Gone: err == nil, Account: c.acct.Name}
	}
	return r.finish(c, r.d.Relay.Copy(ctx, w, c.att.Call, c.hooks))
}

// start runs the attempt loop and readies the relay; its frame is gone
// before the answer is copied.
func (r *Router) start(ctx context.Context, req *Request) (*call, error) {
	c := &call{Request: req, r: r, acct: req.Account, bound: req.Account.Name, state: req.State, hooks: req.Hooks}
	var err error
	if c.att, err = r.attempt(ctx, c); err != nil || c.att.Kind == relay.Abandoned {
		return c, err
	}
	if !c.att.LimitedUntil.IsZero() {
		c.hooks.Header = c.header
	}
	if c.sse = relay.IsSSE(c.att.Call.Resp.Header); c.sse && r.d.Metrics != nil {
		r.d.Metrics.Streams(1)
	}
	return c, nil
}

// finish keeps the account's health from the relayed answer.
func (r *Router) finish(c *call, res *relay.Result) Outcome {
	r.giveSlot(c)
	if c.sse && r.d.Metrics != nil {
		r.d.Metrics.Streams(-1)
	}
	if res.ReadErr != nil && !res.ClientGone && !res.Shutdown {
		r.d.Log.WithFields(c.logFields()).WithField("account", c.acct.Name).Warnf("upstream answer broke: %s", relay.RedactURLError(res.ReadErr))
	}
	if c.att.Kind == relay.Answer && res.Status < 500 {
		r.succeeded(c)
	}
	return Outcome{Result: res, Account: c.acct.Name}
}

// logFields name the request in a log line.
func (c *call) logFields() logrus.Fields { return logrus.Fields{"key": c.KeyID, "tier": c.Tier} }

// header is the caller's header hook for a relayed rejected 429: it also
// tells the client when the account's limit resets, unless the upstream
// said so itself.
func (c *call) header(status int, h http.Header) {
	if now, until := c.r.d.Clock.Now(), c.att.LimitedUntil; until.After(now) && h.Get("Retry-After") == "" {
		h.Set("Retry-After", ceilSeconds(until.Sub(now)))
	}
	if c.Hooks.Header != nil {
		c.Hooks.Header(status, h)
	}
}
