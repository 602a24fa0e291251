package route

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/relay"
)

// attempt calls the upstream until an answer is worth relaying, moving
// the request only as the retry policy (policy.go) allows. It returns the
// attempt to relay (or Abandoned), or the refusal to answer with.
func (r *Router) attempt(ctx context.Context, c *call) (relay.Attempt, error) {
	if now := r.d.Clock.Now(); c.state.Unusable(now) {
		// Limited or cooling: do not call it; another account may serve.
		if !r.overflow(ctx, c, relay.Attempt{Kind: relay.Overflow, Reason: relay.ReasonLimited}) {
			return relay.Attempt{}, accountLimited(c.state, now)
		}
	}
	for {
		if !r.takeSlot(c) {
			// Full: another account of the tier may serve.
			if !r.overflow(ctx, c, relay.Attempt{Kind: relay.Overflow, Reason: ReasonFull}) {
				return relay.Attempt{}, accountFull()
			}
			continue
		}
		call, err := r.send(ctx, c)
		att := relay.Judge(ctx, call, err, r.d.Clock.Now())
		if call != nil {
			r.observe(c.acct.Name, call.Resp.Header)
		}
		switch att.Kind {
		case relay.Abandoned:
			// The client left before the upstream answered: it counts.
			return att, nil
		case relay.Shutdown:
			return att, shuttingDown()
		case relay.Lost:
			// It may have been received: never sent again (policy.go).
			r.settleAccount(c.acct.Name, accounts.OverflowMark{Failure: att.Failure, By: c.Key})
			return att, r.upstreamFailed(c, att.Err)
		case relay.Overflow:
			if mayOverflow(att) && r.overflow(ctx, c, att) {
				if call != nil {
					call.Close()
				}
				continue
			}
			if call == nil {
				return att, r.upstreamFailed(c, att.Err)
			}
		case relay.Expired, relay.Dead:
			retry, rerr := r.accountFailed(ctx, c, att)
			if retry && !c.retried && mayRetryCredential(att) {
				c.retried = true
				call.Close()
				continue
			}
			if retry {
				rerr = &Refusal{Status: http.StatusServiceUnavailable, Type: "overloaded_error",
					Msg: "The upstream account serving this key failed; please retry"}
			}
			if rerr != nil {
				call.Close()
				return att, rerr
			}
		}
		return att, nil
	}
}

// send makes one upstream call with the account's credential, refreshing
// an OAuth token known to be expired first, and trying the account's base
// URLs in order while a connection cannot be made (policy.go).
func (r *Router) send(ctx context.Context, c *call) (*relay.Call, error) {
	a := &c.acct
	if a.Kind == accounts.OAuth && r.d.Refresher != nil && !a.ExpiresAt.IsZero() && !a.ExpiresAt.After(r.d.Clock.Now()) {
		// Known to be expired: refresh (or wait for the replica doing it) first.
		creds, err := r.d.Refresher.RefreshNow(ctx, a.Name, a.AccessToken)
		r.d.Forget()
		if err == nil {
			a.AccessToken, a.RefreshToken, a.ExpiresAt = creds.AccessToken, creds.RefreshToken, creds.ExpiresAt
		}
	}
	t := relay.Target{OAuth: a.Kind == accounts.OAuth, Token: a.APIKey}
	if t.OAuth {
		t.Token = a.AccessToken
	}
	bases := a.BaseURLs
	if len(bases) == 0 {
		bases = []string{""} // the relay's default upstream
	}
	var health *baseHealth // nil for one base: nothing to skip to
	if len(bases) > 1 {
		health = r.bases
		bases = health.order(a.Name, bases)
	}
	t0 := time.Now()
	for i, base := range bases {
		t.BaseURL = base
		call, err := r.d.Relay.Send(ctx, c.In, c.Body, t)
		if err == nil && r.d.Metrics != nil {
			r.d.Metrics.UpstreamHeaders(c.Tier, time.Since(t0))
		}
		last := i == len(bases)-1 || ctx.Err() != nil
		switch {
		case err == nil && !baseFailed(call.Resp.StatusCode):
			health.ok(a.Name, base)
			return call, nil
		case err == nil:
			health.failed(a.Name, base)
			if last {
				return call, nil
			}
			call.Close() // 529/5xx before any body: the next base gets it
		case nextBaseURL(err):
			health.failed(a.Name, base)
			if last {
				return nil, err
			}
		default:
			return call, err // it may have been received: never sent again
		}
	}
	return nil, errors.New("unreachable")
}

// upstreamFailed is the refusal for an attempt that produced no answer.
func (r *Router) upstreamFailed(c *call, err error) error {
	r.d.Log.WithFields(c.logFields()).WithField("account", c.acct.Name).Warnf("upstream call failed: %s", relay.RedactURLError(err))
	if relay.IsTimeout(err) {
		return &Refusal{Status: http.StatusGatewayTimeout, Type: "timeout_error", Msg: "The upstream did not answer in time", Cause: err}
	}
	return &Refusal{Status: http.StatusBadGateway, Type: "api_error", Msg: "The upstream could not be reached", Cause: err}
}

func shuttingDown() error {
	return &Refusal{Status: http.StatusServiceUnavailable, Type: "overloaded_error",
		Msg: "The server is shutting down; please retry", Cause: relay.ErrShutdown}
}

// accountLimited is the refusal when the key's account is limited or
// cooling and no other account can take the request.
func accountLimited(st accounts.State, now time.Time) error {
	if st.LimitedTill.After(now) {
		return &Refusal{Status: http.StatusTooManyRequests, Type: "rate_limit_error", RetryAfter: st.LimitedTill.Sub(now), NoRetry: true,
			Msg: "The upstream account serving this key has reached its usage limit; retry after " + st.LimitedTill.UTC().Format(time.RFC3339)}
	}
	return &Refusal{Status: http.StatusServiceUnavailable, Type: "overloaded_error", RetryAfter: st.CoolingTill.Sub(now),
		Msg: "The upstream account serving this key is overloaded; retry after " + st.CoolingTill.UTC().Format(time.RFC3339)}
}

func ceilSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
