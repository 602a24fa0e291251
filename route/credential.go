package route

import (
	"context"
	"errors"
	"net/http"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/refresh"
	"github.com/claude-route/claude-route/relay"
)

// accountFailed acts on an upstream refusal that is the account's fault,
// not the request's: an expired OAuth token is refreshed, a dead credential
// blacklisted and the key moved. retry reports that c now holds a
// credential worth one more try; err is set when the proxy must answer
// itself, because relaying the upstream's 401 would tell the customer that
// their own key is bad.
func (r *Router) accountFailed(ctx context.Context, c *call, att relay.Attempt) (retry bool, err error) {
	reason := att.Reason
	log := r.d.Log.WithFields(c.logFields()).WithField("account", c.acct.Name)
	switch att.Kind {
	case relay.Expired:
		if r.d.Refresher == nil || c.acct.Kind != accounts.OAuth {
			return false, nil
		}
		creds, err := r.d.Refresher.RefreshNow(ctx, c.acct.Name, c.acct.AccessToken)
		r.d.Forget() // a new token, or a dead account
		if err == nil {
			c.acct.AccessToken, c.acct.RefreshToken, c.acct.ExpiresAt = creds.AccessToken, creds.RefreshToken, creds.ExpiresAt
			return true, nil
		}
		log.WithError(err).Warn("token refresh after an expired-token answer failed")
		if !errors.Is(err, refresh.ErrInvalidGrant) && !errors.Is(err, refresh.ErrGaveUp) {
			return false, &Refusal{Status: http.StatusServiceUnavailable, Type: "api_error", Cause: err,
				Msg: "Service temporarily unavailable: the upstream credential is being renewed, please retry"}
		}
		// The refresh token is dead for good: the account is gone; move the key.
		reason = "oauth refresh given up: " + err.Error()
		if errors.Is(err, refresh.ErrInvalidGrant) {
			reason = "refresh token rejected (invalid_grant)"
		}
	case relay.Dead:
		if c.acct.Kind == accounts.OAuth {
			// A token refreshed by another replica while this request was
			// in flight is stale, not dead: retry with the current one.
			if cur, err := r.d.Accounts.Get(ctx, c.acct.Name); err == nil && cur.AccessToken != c.acct.AccessToken {
				c.acct = cur
				return true, nil
			}
		}
	default:
		return false, nil
	}
	err = r.d.Pool.Blacklist(ctx, c.acct.Name, reason)
	r.d.Forget()
	if err != nil {
		return false, storeDown(err)
	}
	if c.acct.Name != c.bound {
		// An overflow account died: the key's binding is not its to move.
		return false, &Refusal{Status: http.StatusServiceUnavailable, Type: "overloaded_error",
			Msg: "The upstream account serving this key failed; please retry"}
	}
	acct, err := c.Rebind(ctx)
	if err != nil {
		return false, err
	}
	c.acct, c.bound, c.state = acct, acct.Name, accounts.State{}
	return true, nil
}

func storeDown(err error) error {
	return &Refusal{Status: http.StatusServiceUnavailable, Type: "api_error",
		Msg: "Service temporarily unavailable, please retry", Cause: err}
}
