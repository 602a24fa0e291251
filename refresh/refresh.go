// Package refresh keeps OAuth accounts' access tokens fresh, punctually and
// exactly once across replicas.
//
// Upstream refresh tokens rotate: a used one dies. Two refreshes of one
// account racing each other leave one of them with invalid_grant and, if
// the wrong answer is kept, a dead account. So every refresh of an account
// runs under a redsync lock (cr:refresh:lock:<name>) and follows
// lock → reload the credentials → re-check whether a refresh is still
// needed → token call → compare-and-set in the store → write the account
// file → unlock. A replica that lost the race finds fresh credentials on
// reload and only reschedules.
// The two writes after a successful token call (the CAS and the file) are
// retried (keep.go): the used refresh token is dead by then, and a store
// reply that came after the client's read timeout must not leave the
// file, which a store that lost its data is synced from, with it.
//
// The token endpoint is treated gently: after any successful refresh no
// scheduled refresh starts for GlobalLock (cr:refresh:global, across
// replicas); after a failure the account cools down for Cooldown; an
// account gets at most MaxAttempts failed token calls per AttemptWindow (a
// fixed window opened by the first failure); a success resets both.
// Bookkeeping lives in cr:refresh:state:<name>.
//
// What counts as an attempt: only an actual call to the token endpoint that
// did not succeed (an error status, 429 included, or a transport error).
// Being blocked by the global lock, waiting out a cooldown, finding the lock
// taken or the store unreachable are not attempts: they only reschedule.
// A 429 waits for the longer of Retry-After and Cooldown.
//
// Urgent refreshes (RefreshNow: a request found the token expired) skip the
// global lock, because a client is waiting and the token is already dead;
// they still respect the cooldown and the attempt limit, and their success
// starts the global quiet period like any other.
//
// A definitive refusal (invalid_grant, organisation refused or disabled)
// blacklists the account; its refresh token is remembered by fingerprint
// and never sent again, until new credentials arrive.
//
// Timers: Run plans every account (see plan) and owns one clock timer per
// account; it stops them all when its context ends. No token value ever
// reaches a log line or an error.
package refresh

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncpool "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	"golang.org/x/oauth2"

	"github.com/claude-route/claude-route/internal/clock"
)

// Creds are an OAuth account's credentials.
type Creds struct {
	AccessToken, RefreshToken string
	ExpiresAt                 time.Time
}

// Account is an OAuth account as the planner needs it.
type Account struct {
	Name, Tier string
	ExpiresAt  time.Time
}

// Store is where the credentials live (the accounts package, in Redis).
type Store interface {
	// OAuthAccounts lists every OAuth account known in Redis.
	OAuthAccounts(ctx context.Context) ([]Account, error)
	// Credentials reads an account's current credentials.
	Credentials(ctx context.Context, name string) (Creds, error)
	// SwapCredentials writes next only if the store still holds usedRefresh
	// (false otherwise), so a stale holder never overwrites newer tokens.
	SwapCredentials(ctx context.Context, name, usedRefresh string, next Creds) (bool, error)
}

// FileWriter writes refreshed credentials back to the account file.
type FileWriter interface {
	WriteBack(ctx context.Context, name string, c Creds) error
}

// GaveUpNotifier hears that an account's refresh was given up for good.
type GaveUpNotifier interface {
	RefreshGaveUp(account, reason string)
}

// Blacklister takes an account out of service.
type Blacklister interface {
	Blacklist(ctx context.Context, name, reason string) error
}

var (
	// ErrInvalidGrant: the endpoint refused the refresh token for good.
	ErrInvalidGrant = errors.New("refresh token refused for good")
	// ErrRateLimited: the endpoint answered 429.
	ErrRateLimited = errors.New("token endpoint rate limited")
	// ErrCooldown: the account failed recently and is cooling down.
	ErrCooldown = errors.New("account refresh in cooldown")
	// ErrGaveUp: the account's refresh token was refused for good or its
	// attempts ran out before expiry; it is blacklisted until new
	// credentials arrive or the operator recovers it.
	ErrGaveUp = errors.New("account refresh given up")
	// ErrAttemptsExhausted: MaxAttempts failed calls in the window.
	ErrAttemptsExhausted = errors.New("account refresh attempts exhausted")
	// ErrLockBusy: another holder kept the account lock.
	ErrLockBusy = errors.New("account refresh lock busy")
	// ErrStale: the store's credentials changed under the refresh.
	ErrStale = errors.New("credentials changed during refresh")
	// ErrBadAnswer: a 2xx answer without usable tokens.
	ErrBadAnswer = errors.New("token endpoint answer unusable")
	// ErrNoRefreshToken: nothing to refresh with.
	ErrNoRefreshToken = errors.New("account has no refresh token")
	// ErrAlreadyRunning: Run was called twice at once.
	ErrAlreadyRunning = errors.New("refresher already running")

	errGlobalLock = errors.New("blocked by global refresh lock")
)

// minDelay keeps every timer in the future: a fake clock would otherwise
// fire it synchronously inside AfterFunc, under our mutex.
const minDelay = time.Millisecond

// Refresher schedules and performs OAuth refreshes.
type Refresher struct {
	rdb redis.UniversalClient
	st  Store
	fw  FileWriter
	bl  Blacklister
	cfg Config
	clk clock.Clock
	log *logrus.Entry
	rs  *redsync.Redsync

	planMu sync.Mutex // one replan at a time, so an older read never wins

	mu       sync.Mutex // guards the fields below
	running  bool
	runCtx   context.Context
	timers   map[string]*timerEntry
	retry    *timerEntry // replan retry after a store failure
	seq      uint64
	inflight sync.WaitGroup // timer callbacks in progress; Run waits for them
	pending  map[string]pendingSwap
}

type timerEntry struct {
	id      uint64
	at, exp time.Time
	t       clock.Timer
}

// New returns a refresher; Run starts its timers, RefreshNow works without.
func New(rdb redis.UniversalClient, st Store, fw FileWriter, bl Blacklister, cfg Config) *Refresher {
	cfg = cfg.withDefaults()
	return &Refresher{
		rdb: rdb, st: st, fw: fw, bl: bl, cfg: cfg,
		clk:    cfg.Clock,
		log:    cfg.Logger,
		rs:     redsync.New(redsyncpool.NewPool(rdb)),
		timers: map[string]*timerEntry{},
	}
}

// Run plans every account, fires the timers, and returns once ctx is done
// and every timer is stopped and every callback has returned.
func (r *Refresher) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return ErrAlreadyRunning
	}
	r.running, r.runCtx = true, ctx
	r.mu.Unlock()

	if err := r.replan(ctx); err != nil && ctx.Err() == nil {
		r.log.WithError(err).Warn("refresh planning failed; retrying")
		r.armRetry()
	}
	<-ctx.Done()

	r.mu.Lock()
	r.running, r.runCtx = false, nil
	for name, e := range r.timers {
		e.t.Stop()
		delete(r.timers, name)
	}
	if r.retry != nil {
		r.retry.t.Stop()
		r.retry = nil
	}
	r.mu.Unlock()
	r.inflight.Wait()
	return nil
}

// Planned reports the token expiry this replica's pending timer for the
// account was planned for: once it names a new expiry, this replica has
// seen the new token and will not refresh the old one.
func (r *Refresher) Planned(name string) (exp time.Time, ok bool) {
	_, exp, ok = r.plannedFor(name)
	return exp, ok
}

func (r *Refresher) plannedFor(name string) (at, exp time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.timers[name]
	if e == nil {
		return time.Time{}, time.Time{}, false
	}
	return e.at, e.exp, true
}

// Replan re-reads the accounts and re-plans every timer; call it after a
// sync changed the accounts. Without a running Run it does nothing (Run
// plans when it starts).
func (r *Refresher) Replan(ctx context.Context) error {
	r.mu.Lock()
	running := r.running
	r.mu.Unlock()
	if !running {
		return nil
	}
	return r.replan(ctx)
}

func (r *Refresher) replan(ctx context.Context) error {
	r.planMu.Lock()
	defer r.planMu.Unlock()
	accts, err := r.st.OAuthAccounts(ctx)
	if err != nil {
		return fmt.Errorf("list oauth accounts: %w", err)
	}
	states, err := r.states(ctx, accts)
	if err != nil {
		return err
	}
	gu, err := r.globalUntil(ctx)
	if err != nil {
		return err
	}
	now := r.clk.Now()
	items := make([]planItem, 0, len(accts))
	exp := make(map[string]time.Time, len(accts))
	for i, a := range accts {
		if a.ExpiresAt.IsZero() {
			r.log.WithField("account", a.Name).Warn("oauth account without expiry: not scheduled")
			continue
		}
		if st := states[i]; st.dead != "" {
			// Its refresh token was refused for good; plan it again only
			// once new credentials arrived (a sync, the operator's fix).
			if c, err := r.st.Credentials(ctx, a.Name); err == nil && fingerprint(c.RefreshToken) == st.dead {
				continue
			}
		}
		it := planItem{name: a.Name, expires: a.ExpiresAt, notBefore: states[i].cooldownUntil}
		if st := states[i]; st.attemptsAt(now, r.cfg.AttemptWindow) >= r.cfg.MaxAttempts {
			if end := st.windowStart.Add(r.cfg.AttemptWindow); end.After(it.notBefore) {
				it.notBefore = end
			}
		}
		items = append(items, it)
		exp[a.Name] = a.ExpiresAt
	}
	slots := plan(now, gu, items, r.cfg.Lead, r.cfg.GlobalLock+r.cfg.Margin)

	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return nil
	}
	for name, e := range r.timers {
		if _, ok := slots[name]; !ok {
			e.t.Stop()
			delete(r.timers, name)
		}
	}
	for name, at := range slots {
		r.setTimerLocked(name, at, exp[name])
	}
	r.mu.Unlock()
	return r.saveNext(ctx, slots)
}

// states reads the accounts' refresh state in one round trip.
func (r *Refresher) states(ctx context.Context, accts []Account) ([]state, error) {
	cmds := make([]*redis.MapStringStringCmd, len(accts))
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range accts {
			cmds[i] = p.HGetAll(ctx, stateKey(a.Name))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read refresh states: %w", err)
	}
	out := make([]state, len(accts))
	for i, c := range cmds {
		out[i] = parseState(c.Val())
	}
	return out, nil
}

// setTimerLocked (re)arms an account's timer; an unchanged plan keeps the
// running timer. r.mu must be held and r.running true.
func (r *Refresher) setTimerLocked(name string, at, exp time.Time) {
	if e := r.timers[name]; e != nil {
		if e.at.Equal(at) && e.exp.Equal(exp) {
			return
		}
		e.t.Stop()
	}
	r.seq++
	id := r.seq
	d := max(at.Sub(r.clk.Now()), minDelay)
	e := &timerEntry{id: id, at: at, exp: exp}
	claim := func() bool {
		if cur := r.timers[name]; cur == nil || cur.id != id {
			return false // superseded or removed while firing
		}
		delete(r.timers, name)
		return true
	}
	e.t = r.clk.AfterFunc(d, r.owned(claim, func(ctx context.Context) { r.fire(ctx, name, exp) }))
	r.timers[name] = e
	r.log.WithFields(logrus.Fields{"account": name, "in": d.Round(time.Second).String(), "at": at.UTC().Format(time.RFC3339)}).
		Info("refresh timer set")
}

// schedule arms one account's timer from a callback.
func (r *Refresher) schedule(ctx context.Context, name string, at, exp time.Time) {
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return
	}
	r.setTimerLocked(name, at, exp)
	r.mu.Unlock()
	if err := r.saveNext(ctx, map[string]time.Time{name: at}); err != nil {
		r.log.WithField("account", name).WithError(err).Warn("could not publish next refresh")
	}
}

// armRetry schedules a replan after a failed one.
func (r *Refresher) armRetry() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running || r.retry != nil {
		return
	}
	r.seq++
	id := r.seq
	claim := func() bool {
		if r.retry == nil || r.retry.id != id {
			return false
		}
		r.retry = nil
		return true
	}
	e := &timerEntry{id: id}
	e.t = r.clk.AfterFunc(r.cfg.RetryDelay, r.owned(claim, func(ctx context.Context) {
		if err := r.replan(ctx); err != nil && ctx.Err() == nil {
			r.log.WithError(err).Warn("refresh planning failed; retrying")
			r.armRetry()
		}
	}))
	r.retry = e
}

// owned wraps a timer callback so that Run owns it: it runs only while Run
// runs and only if claim (called under r.mu) says the timer is current,
// and Run waits for it before returning.
func (r *Refresher) owned(claim func() bool, fn func(context.Context)) func() {
	return func() {
		r.mu.Lock()
		if !r.running || !claim() {
			r.mu.Unlock()
			return
		}
		ctx := r.runCtx
		r.inflight.Add(1)
		r.mu.Unlock()
		defer r.inflight.Done()
		fn(ctx)
	}
}

// fire is a scheduled refresh planned for credentials expiring at exp.
func (r *Refresher) fire(ctx context.Context, name string, exp time.Time) {
	r.log.WithField("account", name).Info("refresh timer fired")
	res := r.do(ctx, name, false, func(c Creds, _ time.Time) bool {
		return !c.ExpiresAt.After(exp) // later expiry: someone already refreshed
	})
	r.report(res)
	switch res.kind {
	case refreshed, notNeeded:
		if err := r.replan(ctx); err != nil && ctx.Err() == nil {
			r.log.WithError(err).Warn("refresh planning failed; retrying")
			r.armRetry()
		}
	case waiting:
		r.schedule(ctx, name, res.until, exp)
	case retryLater:
		r.schedule(ctx, name, r.clk.Now().Add(r.cfg.RetryDelay), exp)
	case gaveUp:
		// Dead until new credentials arrive; a sync's Replan picks them up.
	}
}

// RefreshNow is the urgent path: a request found the token expired (or got
// 401 "OAuth token has expired"). It waits for the account lock (bounded by
// ctx), reloads, and returns at once if the store already holds a token
// other than seenAccess; otherwise it refreshes, skipping the global lock
// (see the package comment) but not the cooldown or attempt limit. An
// empty seenAccess refreshes only a token within Lead of its expiry.
func (r *Refresher) RefreshNow(ctx context.Context, name, seenAccess string) (Creds, error) {
	res := r.do(ctx, name, true, func(c Creds, now time.Time) bool {
		if seenAccess == "" {
			return !c.ExpiresAt.After(now.Add(r.cfg.Lead))
		}
		return subtle.ConstantTimeCompare([]byte(c.AccessToken), []byte(seenAccess)) == 1
	})
	r.report(res)
	switch res.kind {
	case refreshed, notNeeded:
		return res.creds, nil
	default:
		return Creds{}, res.err
	}
}

type outcome int

// report tells Config.OnOutcome (the server's metrics) how a refresh went.
func (r *Refresher) report(res result) {
	if r.cfg.OnOutcome == nil {
		return
	}
	switch {
	case res.kind == refreshed:
		r.cfg.OnOutcome("success")
	case res.kind == gaveUp:
		r.cfg.OnOutcome("gave_up")
	case res.kind == retryLater:
		r.cfg.OnOutcome("retry_later")
	case errors.Is(res.err, ErrCooldown), errors.Is(res.err, ErrAttemptsExhausted):
		r.cfg.OnOutcome("blocked")
	case res.kind == waiting && res.err != nil:
		r.cfg.OnOutcome("failure")
	}
}

const (
	refreshed  outcome = iota
	notNeeded          // fresh already; creds holds them
	waiting            // cooldown, attempts, global lock or a failure: try at until
	retryLater         // lock or store trouble: try after RetryDelay
	gaveUp             // definitive: no timer until the account changes
)

type result struct {
	kind  outcome
	until time.Time
	creds Creds
	err   error
}

// do is one refresh under the account lock: lock → reload → re-check →
// limits → token call → CAS → file → unlock.
func (r *Refresher) do(ctx context.Context, name string, urgent bool, needed func(Creds, time.Time) bool) result {
	log := r.log.WithField("account", name)
	// The lock is taken on a context of its own: redsync cleans up a
	// half-taken lock with the same context, and a caller that disconnects
	// mid-acquire must not leave the lock held with no holder.
	lockCtx, cancelLock := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LockWait)
	defer cancelLock()
	mu := r.rs.NewMutex(lockKey(name), redsync.WithExpiry(r.cfg.LockExpiry), redsync.WithTries(math.MaxInt32))
	if err := mu.LockContext(lockCtx); err != nil {
		return result{kind: retryLater, err: fmt.Errorf("%w: %s: %w", ErrLockBusy, name, err)}
	}
	// From here the work is detached from ctx: once the token call is made
	// the old refresh token is dead, and the answer must be stored even if
	// the caller gave up. It is bounded so that it ends under the lock.
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.callTimeout())
	defer cancel()
	defer func() {
		if _, err := mu.UnlockContext(context.WithoutCancel(ctx)); err != nil {
			log.WithError(err).Warn("refresh lock release failed; it expires by itself")
		}
	}()

	creds, err := r.st.Credentials(work, name)
	if err != nil {
		return result{kind: retryLater, err: fmt.Errorf("reload %s: %w", name, err)}
	}
	if p, ok := r.takePending(name); ok && p.used == creds.RefreshToken {
		// An earlier refresh got new tokens but could not store them: the
		// token it used is dead, so store the new ones before anything else.
		if ok, err := r.st.SwapCredentials(work, name, p.used, p.next); err != nil {
			r.putPending(name, p)
			return result{kind: retryLater, err: fmt.Errorf("store refreshed credentials: %w", err)}
		} else if ok {
			log.Info("stored the credentials of an earlier refresh")
			creds = p.next
		}
	}
	now := r.clk.Now()
	if !needed(creds, now) {
		return result{kind: notNeeded, creds: creds}
	}
	if creds.RefreshToken == "" {
		log.Warn("no refresh token: cannot refresh")
		return result{kind: gaveUp, err: fmt.Errorf("%w: %s", ErrNoRefreshToken, name)}
	}
	st, err := r.loadState(work, name)
	if err != nil {
		return result{kind: retryLater, err: err}
	}
	if st.dead != "" && st.dead == fingerprint(creds.RefreshToken) {
		return result{kind: gaveUp, err: fmt.Errorf("%w: %s", ErrGaveUp, name)}
	}
	if n := st.attemptsAt(now, r.cfg.AttemptWindow); n >= r.cfg.MaxAttempts {
		until := st.windowStart.Add(r.cfg.AttemptWindow)
		log.Warnf("refresh attempts exhausted (%d/%d), next try in %ds", n, r.cfg.MaxAttempts, secs(until.Sub(now)))
		err := fmt.Errorf("%w: %s until %s", ErrAttemptsExhausted, name, until.UTC().Format(time.RFC3339))
		if creds.ExpiresAt.Before(until) {
			return r.giveUp(work, log, name, creds, fmt.Sprintf("oauth refresh failed %d times; the token expires before another try is allowed", n), err)
		}
		return result{kind: waiting, until: until, err: err}
	}
	if st.cooldownUntil.After(now) {
		left := st.cooldownUntil.Sub(now)
		log.Infof("in cooldown (%ds left)", secs(left))
		return result{kind: waiting, until: st.cooldownUntil, err: fmt.Errorf("%w: %s for %ds", ErrCooldown, name, secs(left))}
	}
	var claim string
	if !urgent {
		var blocked time.Time
		claim, blocked, err = r.claimGlobal(work, now)
		if err != nil {
			return result{kind: retryLater, err: err}
		}
		if !blocked.IsZero() {
			log.Infof("blocked by global refresh lock (%ds left)", secs(blocked.Sub(now)))
			return result{kind: waiting, until: blocked, err: errGlobalLock}
		}
	}
	if err := ctx.Err(); err != nil { // last moment to give up cheaply
		r.release(work, log, claim)
		return result{kind: retryLater, err: err}
	}

	tok, err := r.exchange(work, creds.RefreshToken)
	// Whatever the call took, what follows gets a budget of its own: after a
	// successful call the old refresh token is dead, so the new tokens must
	// be stored even if the call used up the work budget.
	after, cancelAfter := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LockExpiry/3)
	defer cancelAfter()
	if err != nil {
		r.release(after, log, claim)
		return r.failed(after, log, name, creds, err)
	}
	work = after
	next := Creds{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.Expiry}
	ok, err := r.swap(work, name, creds.RefreshToken, next)
	if err != nil {
		r.release(work, log, claim)
		// Keep them: in memory for the next try on this replica, and in the
		// file, whose later expiry wins at the next sync.
		r.putPending(name, pendingSwap{used: creds.RefreshToken, next: next})
		if ferr := r.writeBack(work, name, next); ferr != nil {
			log.WithError(ferr).Error("account file write-back failed too")
		}
		log.WithError(err).Error("refreshed credentials could not be stored in Redis yet; kept for the next try")
		return result{kind: retryLater, err: fmt.Errorf("store refreshed credentials: %w", err)}
	}
	if !ok {
		r.release(work, log, claim)
		log.Warn("credentials changed in the store during the refresh; keeping the store's")
		cur, err := r.st.Credentials(work, name)
		if err != nil {
			return result{kind: retryLater, err: fmt.Errorf("reload %s: %w", name, err)}
		}
		return result{kind: notNeeded, creds: cur, err: ErrStale}
	}
	done := r.clk.Now()
	if err := r.writeBack(work, name, next); err != nil {
		// Redis holds the new tokens and a sync never moves them backwards;
		// the file catches up at the next refresh.
		log.WithError(err).Error("account file write-back failed; Redis has the new credentials")
	}
	if err := r.setGlobal(work, done); err != nil {
		log.WithError(err).Warn("could not set the global refresh lock")
	}
	if err := r.recordSuccess(work, name, done); err != nil {
		log.WithError(err).Warn("could not record the refresh")
	}
	log.WithField("expires_in", next.ExpiresAt.Sub(done).Round(time.Second).String()).Info("refresh succeeded")
	log.Infof("global refresh lock set for %ds", secs(r.cfg.GlobalLock))
	return result{kind: refreshed, creds: next}
}

func (r *Refresher) release(ctx context.Context, log *logrus.Entry, claim string) {
	if err := r.releaseGlobal(ctx, claim); err != nil {
		log.WithError(err).Warn("could not release the global refresh claim; it expires by itself")
	}
}

// failed books a failed token call: an attempt, a cooldown (or the longer
// Retry-After of a 429), and for a definitive refusal the blacklist.
func (r *Refresher) failed(ctx context.Context, log *logrus.Entry, name string, creds Creds, err error) result {
	now := r.clk.Now()
	until := now.Add(r.cfg.Cooldown)
	var ee *EndpointError
	if errors.As(err, &ee) && ee.RetryAfter > 0 && now.Add(ee.RetryAfter).After(until) {
		until = now.Add(ee.RetryAfter)
	}
	dead := ""
	if errors.Is(err, ErrInvalidGrant) {
		// A refusal of a token the store no longer holds (new credentials
		// arrived from the file meanwhile) says nothing about the account.
		if cur, cerr := r.st.Credentials(ctx, name); cerr == nil && cur.RefreshToken != creds.RefreshToken {
			log.Warn("refresh token refused, but the store already holds a newer one; not blacklisting")
			return result{kind: notNeeded, creds: cur, err: ErrStale}
		}
		dead = fingerprint(creds.RefreshToken)
	}
	n, rerr := r.recordFailure(ctx, name, now, until, err.Error(), dead)
	if rerr != nil {
		log.WithError(rerr).Warn("could not record the failure")
	}
	log.WithError(err).Warnf("refresh failed (attempt %d/%d), next try in %ds", n, r.cfg.MaxAttempts, secs(until.Sub(now)))
	if dead != "" {
		reason := "oauth refresh rejected"
		if ee != nil && ee.reason != "" {
			reason = ee.reason
		}
		return r.giveUp(ctx, log, name, creds, reason, fmt.Errorf("refresh %s: %w", name, err))
	}
	if n >= r.cfg.MaxAttempts && creds.ExpiresAt.Before(now.Add(r.cfg.AttemptWindow)) {
		// No try is left before the token expires: the account is lost
		// until the operator logs it in again.
		return r.giveUp(ctx, log, name, creds,
			fmt.Sprintf("oauth refresh failed %d times; the token expires before another try is allowed", n),
			fmt.Errorf("refresh %s: %w: %w", name, ErrAttemptsExhausted, err))
	}
	return result{kind: waiting, until: until, err: fmt.Errorf("refresh %s: %w", name, err)}
}

// giveUp blacklists the account for good (until new credentials or the
// operator's recover) and marks its refresh token so no timer retries it.
func (r *Refresher) giveUp(ctx context.Context, log *logrus.Entry, name string, creds Creds, reason string, err error) result {
	if merr := r.markDead(ctx, name, fingerprint(creds.RefreshToken)); merr != nil {
		log.WithError(merr).Warn("could not mark the refresh token dead")
	}
	log.WithField("reason", reason).Error("blacklisting account")
	if r.cfg.GaveUp != nil {
		r.cfg.GaveUp.RefreshGaveUp(name, reason)
	}
	if berr := r.bl.Blacklist(ctx, name, reason); berr != nil {
		log.WithError(berr).Error("blacklisting failed")
	}
	return result{kind: gaveUp, err: err}
}

// pendingSwap is a refresh whose new tokens could not be stored yet.
type pendingSwap struct {
	used string
	next Creds
}

func (r *Refresher) putPending(name string, p pendingSwap) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]pendingSwap{}
	}
	r.pending[name] = p
}

func (r *Refresher) takePending(name string) (pendingSwap, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.pending[name]
	delete(r.pending, name)
	return p, ok
}

// secs rounds a wait up to whole seconds for log lines.
func secs(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Status is one account's refresh state, for the admin API.
type Status struct {
	Name                                  string
	ExpiresAt, NextRefresh, CooldownUntil time.Time
	Attempts24h                           int
	LastError                             string
	LastSuccess                           time.Time
}

// Status reports every OAuth account's refresh state, sorted by name.
// CooldownUntil is zero when no cooldown is in force.
func (r *Refresher) Status(ctx context.Context) ([]Status, error) {
	accts, err := r.st.OAuthAccounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list oauth accounts: %w", err)
	}
	states, err := r.states(ctx, accts)
	if err != nil {
		return nil, err
	}
	now := r.clk.Now()
	out := make([]Status, len(accts))
	for i, a := range accts {
		st := states[i]
		s := Status{
			Name: a.Name, ExpiresAt: a.ExpiresAt, NextRefresh: st.next,
			Attempts24h: st.attemptsAt(now, r.cfg.AttemptWindow),
			LastError:   st.lastError, LastSuccess: st.lastSuccess,
		}
		if st.cooldownUntil.After(now) {
			s.CooldownUntil = st.cooldownUntil
		}
		out[i] = s
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// tokenSlack: a token this close to expiry is refreshed before use.
const tokenSlack = 10 * time.Second

// TokenSource gives one account's access token as an oauth2.TokenSource:
// the stored token while it is valid, else an urgent refresh.
func (r *Refresher) TokenSource(ctx context.Context, name string) oauth2.TokenSource {
	return &accountSource{r: r, ctx: ctx, name: name}
}

type accountSource struct {
	r    *Refresher
	ctx  context.Context
	name string
}

func (s *accountSource) Token() (*oauth2.Token, error) {
	c, err := s.r.st.Credentials(s.ctx, s.name)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", s.name, err)
	}
	if !c.ExpiresAt.After(s.r.clk.Now().Add(tokenSlack)) {
		if c, err = s.r.RefreshNow(s.ctx, s.name, c.AccessToken); err != nil {
			return nil, err
		}
	}
	return &oauth2.Token{AccessToken: c.AccessToken, RefreshToken: c.RefreshToken, TokenType: "Bearer", Expiry: c.ExpiresAt}, nil
}
