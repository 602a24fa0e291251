package route

import (
	"net/http"

	"github.com/claude-route/claude-route/relay"
)

// The retry policy, in one place (Caddy's tryAgain). A request body goes
// upstream again only when the attempt before it cannot have been worked
// on:
//
//   - it never reached the upstream: the connection could not be made (a
//     refused or failed dial, a name that does not resolve;
//     relay.NeverSent). The account's next base URL gets it, and when
//     none is left another account of the tier (overflow);
//   - the upstream answered, before any byte of a body, that it did not
//     process it: 529 or another 5xx (the account's next base URL first,
//     then another account of the tier), a 429 (the account's own limit:
//     another account of the tier, once);
//   - the upstream refused the account's credential (401, a revoked
//     token): once more, with a refreshed token or the key's new account.
//
// Nothing else is sent twice. In particular a header timeout or a
// connection that broke after the request was written (relay.Lost): the
// upstream may still be working on the request, and a second send would
// double its work and its cost. The customer gets 504 or 502.

// nextBaseURL reports whether an attempt that failed with err may go to
// the account's next base URL.
func nextBaseURL(err error) bool { return err != nil && relay.NeverSent(err) }

// baseFailed reports whether an answer with status means its base URL
// failed: it did not process the request, and the account's next base may.
func baseFailed(status int) bool { return status >= 500 }

// mayOverflow reports whether the attempt may go to another account of
// the tier (when the tier allows overflow and the request has not
// overflowed yet).
func mayOverflow(att relay.Attempt) bool {
	if att.Kind != relay.Overflow {
		return false
	}
	if att.Call == nil {
		return relay.NeverSent(att.Err)
	}
	st := att.Status
	return st == http.StatusTooManyRequests || st >= 500
}

// mayRetryCredential reports whether the attempt may be sent once more
// with another credential: the upstream refused the one it carried.
func mayRetryCredential(att relay.Attempt) bool {
	return att.Kind == relay.Expired || att.Kind == relay.Dead
}
