package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/cache"
	"github.com/claude-route/claude-route/concurrency"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/tiers"
)

// caller is the typed scope of an authenticated customer request, passed
// explicitly instead of stored in gin's untyped context bag.
type caller struct {
	hash    string
	rec     keys.Record
	tier    *tiers.Tier
	account string // bound account, "" when not bound yet
}

// httpError is a refusal in the contract's shape.
type httpError struct {
	status     int
	typ, msg   string
	retryAfter time.Duration
	// noRetry marks a refusal that waiting a moment cannot fix (a quota or
	// budget used up): it answers x-should-retry: false, so the Anthropic
	// and OpenAI SDKs raise at once instead of sleeping a retry-after of
	// hours.
	noRetry bool
	cause   error
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.cause }

func (e *httpError) write(w http.ResponseWriter) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(ceilSeconds(e.retryAfter)))
	}
	if e.noRetry {
		w.Header().Set("X-Should-Retry", "false")
	}
	writeError(w, e.status, e.typ, e.msg)
}

func ceilSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func storeDown(err error) *httpError {
	return &httpError{status: http.StatusServiceUnavailable, typ: errAPI,
		msg: "Service temporarily unavailable, please retry", cause: err}
}

func unauthorized(msg string) *httpError {
	return &httpError{status: http.StatusUnauthorized, typ: errAuthentication, msg: msg}
}

// clientKey takes the customer's key from x-api-key or Authorization:
// Bearer (keys.FromHeaders documents which wins when both are sent).
func clientKey(h http.Header) string {
	k, _ := keys.FromHeaders(h)
	return strings.TrimSpace(k)
}

// authenticate checks the key's format without touching the store, then
// reads its record and binding in one round trip.
func (s *Server) authenticate(ctx context.Context, h http.Header) (*caller, *httpError) {
	cl, _, herr := s.authenticateEnter(ctx, h, false)
	return cl, herr
}

// keyEntry is what the key cache holds: a key's record and binding as
// one authentication read them.
type keyEntry struct {
	rec     keys.Record
	account string
}

// authenticateEnter is authenticate that, when enter is set, also enters
// the key's concurrency queue when its tier limits requests in flight (the
// caller finishes it with Entry.Admit). A key whose record is cached costs
// no read; one that is not is read, with its binding, in one round trip
// that also carries the enter, so authentication and the enter never take
// two. A refused key's entry is abandoned here.
func (s *Server) authenticateEnter(ctx context.Context, h http.Header, enter bool) (*caller, *concurrency.Entry, *httpError) {
	key := clientKey(h)
	if key == "" {
		return nil, nil, unauthorized("Unauthorized API key: no key given (x-api-key or Authorization: Bearer)")
	}
	if err := keys.CheckFormat(key); err != nil {
		return nil, nil, unauthorized("Invalid API key format: expected sk-cli-v1- followed by 32 letters or digits")
	}
	hash := keys.Hash(key)
	enter = enter && s.d.Leases != nil
	if e, ok := s.keyCache.Get(hash); ok {
		cl, herr := s.callerOf(hash, e.rec, e.account)
		if herr != nil || !enter || cl.tier.MaxConcurrent() == 0 {
			return cl, nil, herr
		}
		ctx, cancel := context.WithTimeout(ctx, storeBudget)
		defer cancel()
		var entry *concurrency.Entry
		if err := s.pipelined(ctx, func(pipe redis.Pipeliner) { entry = s.d.Leases.QueueEnter(ctx, pipe, hash) }); err != nil {
			return nil, nil, storeDown(err)
		}
		return cl, entry, nil // Admit reads the entry's own result
	}
	ctx, cancel := context.WithTimeout(ctx, storeBudget)
	defer cancel()
	gen := s.keyCache.Begin()
	var recCmd *redis.MapStringStringCmd
	var bindCmd *redis.StringCmd
	var entry *concurrency.Entry
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		recCmd = s.d.Keys.QueueGet(ctx, pipe, hash)
		bindCmd = s.d.Pool.QueueBound(ctx, pipe, hash)
		if enter {
			entry = s.d.Leases.QueueEnter(ctx, pipe, hash)
		}
	})
	if err != nil { // nothing was sent
		return nil, nil, storeDown(err)
	}
	cl, herr := s.callerRead(hash, gen, recCmd, bindCmd)
	if entry != nil && (herr != nil || cl.tier.MaxConcurrent() == 0) {
		// The enter may have taken a place the request will not use (a
		// refused key, or a tier without a limit): give it back off the
		// answer's path.
		s.bg.Add(1)
		go func(e *concurrency.Entry) {
			defer s.bg.Done()
			actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			e.Abandon(actx)
		}(entry)
		entry = nil
	}
	return cl, entry, herr
}

// callerRead checks the record and binding read by the authentication
// pipeline, and caches them (a refusal too: a flood of requests with a
// revoked key costs the store nothing more).
func (s *Server) callerRead(hash string, gen cache.Fill, recCmd *redis.MapStringStringCmd, bindCmd *redis.StringCmd) (*caller, *httpError) {
	if err := recCmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeDown(err)
	}
	if err := bindCmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, storeDown(err)
	}
	rec, err := keys.ParseRecord(hash, recCmd.Val())
	if err != nil {
		if errors.Is(err, keys.ErrNotFound) {
			return nil, unauthorized("Unauthorized API key")
		}
		return nil, storeDown(err)
	}
	s.keyCache.Put(hash, gen, keyEntry{rec: rec, account: bindCmd.Val()})
	return s.callerOf(hash, rec, bindCmd.Val())
}

// callerOf checks a key's record: active, and of a tier still offered.
func (s *Server) callerOf(hash string, rec keys.Record, account string) (*caller, *httpError) {
	if err := rec.Active(s.d.Clock.Now()); err != nil {
		if errors.Is(err, keys.ErrExpired) {
			return nil, unauthorized("Unauthorized API key: key expired on " + rec.Expires.UTC().Format(time.RFC3339))
		}
		return nil, unauthorized("Unauthorized API key: key revoked")
	}
	tier, ok := s.d.Tiers.Get(rec.Tier)
	if !ok {
		return nil, unauthorized("Unauthorized API key: tier " + rec.Tier + " is no longer offered")
	}
	return &caller{hash: hash, rec: rec, tier: tier, account: account}, nil
}

// bind binds (or rebinds) the caller to an account of its tier.
func (s *Server) bind(ctx context.Context, cl *caller) *httpError {
	prev := cl.account
	// Whatever happened, the cached binding may be out of date.
	defer s.keyCache.Drop(cl.hash)
	// The answer is handled in its own frame: the script's round trip runs
	// below this one, on the stack a stream then keeps.
	b, err := s.d.Pool.BindKey(ctx, cl.hash, cl.tier.Name, cl.tier.Slots, cl.rec.Expires)
	return s.bound(cl, prev, b, err)
}

// bound acts on a binding's answer.
func (s *Server) bound(cl *caller, prev string, b accounts.Binding, err error) *httpError {
	switch {
	case errors.Is(err, accounts.ErrKeyInactive):
		// Revoked or expired since authentication: the slot it held is
		// already given back and must stay so.
		return unauthorized("Unauthorized API key: key revoked or expired")
	case errors.Is(err, accounts.ErrFull):
		s.metrics.capacity.WithLabelValues(cl.tier.Name, "full").Inc()
		return &httpError{status: http.StatusServiceUnavailable, typ: errOverloaded,
			msg: fmt.Sprintf("All %s accounts are at capacity", cl.tier.Title()), cause: err}
	case errors.Is(err, accounts.ErrEmpty):
		s.metrics.capacity.WithLabelValues(cl.tier.Name, "empty").Inc()
		return &httpError{status: http.StatusServiceUnavailable, typ: errOverloaded,
			msg: fmt.Sprintf("No %s accounts available in pool", cl.tier.Title()), cause: err}
	case err != nil:
		return storeDown(err)
	}
	cl.account = b.Account
	if b.New {
		if prev != "" {
			s.log.WithFields(logFields(cl)).Infof("key moved from %s to %s", prev, b.Account)
		}
		// The ledger is the durable record of bindings. The binding is
		// posted to its writer, which commits it with the next batch (one
		// append for every binding of the last moment), so the request
		// never waits for the disk; sync writes back any the ledger missed.
		if err := s.d.Keys.PostBinding(cl.tier.Name, cl.hash, b.Account); err != nil {
			s.log.WithFields(logFields(cl)).WithError(err).Warn("could not record the binding in the ledger")
		}
	}
	return nil
}

func logFields(cl *caller) map[string]any {
	return map[string]any{"key": cl.rec.ID, "tier": cl.tier.Name}
}

func (s *Server) requireCaller(w http.ResponseWriter, r *http.Request) *caller {
	ctx, cancel := context.WithTimeout(r.Context(), storeBudget)
	defer cancel()
	cl, herr := s.authenticate(ctx, r.Header)
	if herr != nil {
		s.logRefusal(nil, r.Header, "", herr)
		herr.write(w)
		return nil
	}
	return cl
}

// customerUsage shows the key its own tier, expiry, account alias and quotas.
func (s *Server) customerUsage(c *ginContext) {
	ctx := c.Request.Context()
	cl := s.requireCaller(c.Writer, c.Request)
	if cl == nil {
		return
	}
	table := s.d.Tiers.Load() // one table for the whole view
	fams := map[string]any{}
	for _, f := range table.Families {
		if !cl.tier.Allows(f.Name) {
			continue
		}
		limit, ok := cl.tier.Quota(f.Name)
		if !ok {
			fams[f.Name] = map[string]any{"used": nil, "limit": nil, "unlimited": true}
			continue
		}
		res, err := s.d.Limiter.Peek(ctx, s.quotaRequest(cl, f.Name, limit))
		if err != nil {
			storeDown(err).write(c.Writer)
			return
		}
		fams[f.Name] = map[string]any{"used": res.Count, "limit": limit, "remaining": res.Remaining,
			"reset": res.Reset.UTC().Format(time.RFC3339)}
	}
	out := map[string]any{
		"id": cl.rec.ID, "tier": cl.tier.Name, "status": cl.rec.Status,
		"created_at": cl.rec.Created.UTC().Format(time.RFC3339),
		"expires_at": nil, "account": nilIfEmpty(cl.account),
		"window_seconds": int64(time.Duration(table.Window) / time.Second), "families": fams,
	}
	if !cl.rec.Expires.IsZero() {
		out["expires_at"] = cl.rec.Expires.UTC().Format(time.RFC3339)
	}
	// A key sold from stock waits for its first successful request to start
	// its validity: "not activated", no expires_at yet.
	out["activated"] = !cl.rec.NotActivated()
	if bv, err := s.budgetViews(ctx, cl.rec, cl.tier); err != nil {
		storeDown(err).write(c.Writer)
		return
	} else if bv != nil {
		out["budgets"] = bv
	}
	if cl.rec.NotActivated() {
		out["validity_seconds"] = int64(cl.rec.FirstUse / time.Second)
	}
	if s.d.Usage != nil {
		if sum, err := s.d.Usage.Key(ctx, cl.hash); err == nil {
			out["tokens"] = sum
			out["cost_usd"] = s.costOf(sum)
		}
		if n, asked := daysAsked(c.Query("days")); asked {
			days, err := s.customerDays(ctx, cl.hash, n)
			if err != nil {
				storeDown(err).write(c.Writer)
				return
			}
			out["days"] = days
		}
	}
	c.JSON(http.StatusOK, out)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// modelRefusal words a tier's model refusal. It keeps its start ("Trial
// tier can only use Sonnet models": clients and scripts match on it) and
// names the fix, because Claude Code shows a 403 as "Failed to
// authenticate" and this message is all the customer sees.
func modelRefusal(tr *tiers.Tier) string {
	msg := fmt.Sprintf("%s tier can only use %s models", tr.Title(), tr.AllowedText())
	if alias := permittedAlias(tr); alias != "" {
		msg += fmt.Sprintf(". Pick a permitted model: set ANTHROPIC_MODEL=%s, or pass --model %s in Claude Code", alias, alias)
	}
	return msg
}

// permittedAlias is a model alias Claude Code understands that the tier
// allows: sonnet when it may, else its first named family.
func permittedAlias(tr *tiers.Tier) string {
	if tr.Allows("sonnet") {
		return "sonnet"
	}
	for _, f := range []string{"opus", "haiku"} {
		if tr.Allows(f) {
			return f
		}
	}
	return ""
}

// pipelined runs the commands queue adds in one round trip: shared with
// other requests' when a Batcher is configured. An error means nothing was
// sent; otherwise every command carries its own result (read those: a
// shared pipeline's overall error may be another request's).
func (s *Server) pipelined(ctx context.Context, queue func(redis.Pipeliner)) error {
	if s.d.Batch != nil {
		return s.d.Batch.Do(ctx, queue)
	}
	pipe := s.d.Pipelines.Pipeline()
	queue(pipe)
	_, _ = pipe.Exec(ctx)
	return nil
}
