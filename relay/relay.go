// Package relay is the upstream side of a request: the transport (HTTP/2
// health checks, header timeout, no redirects), the account's credential
// on the way out, the response-header allowlist and the stream copy on the
// way back, with the usage tap and the idle timeout. Each attempt ends in
// one outcome value (Attempt before anything reached the client, Result
// after) and Refund decides, from facts alone, whether the quota place is
// given back. It knows nothing of keys or quotas.
package relay

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// Target is the account an attempt is made with.
type Target struct {
	// BaseURLs are tried in order while the connection itself fails;
	// empty means Config.DefaultURL.
	BaseURLs []string
	// OAuth: Token is an OAuth access token (Bearer); else an API key.
	OAuth bool
	Token string
}

// Config tunes a Relay.
type Config struct {
	// DefaultURL is the upstream for accounts without their own base URL.
	DefaultURL string
	// HeaderTimeout bounds the wait for response headers (default 10 m).
	HeaderTimeout time.Duration
	// IdleTimeout ends an answer when no byte came from the upstream for
	// that long (STREAM_IDLE_TIMEOUT, default 5 m), on Clock.
	IdleTimeout time.Duration
	Clock       clock.Clock
	// Transport overrides the upstream transport (tests, benchmarks).
	Transport http.RoundTripper
}

// Relay makes upstream calls and copies their answers.
type Relay struct {
	cfg Config
	rt  http.RoundTripper
}

// New returns a relay; zero Config fields get their defaults.
func New(cfg Config) *Relay {
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 10 * time.Minute
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	rt := cfg.Transport
	if rt == nil {
		rt = NewTransport(cfg.HeaderTimeout)
	}
	return &Relay{cfg: cfg, rt: rt}
}

// IdleTimeout is the idle limit in use.
func (r *Relay) IdleTimeout() time.Duration { return r.cfg.IdleTimeout }

// Call is one upstream call whose headers have come. Close it.
type Call struct {
	Resp *http.Response
	// cancel ends the upstream request; the idle watchdog uses it too.
	cancel context.CancelCauseFunc
}

// Close releases the call's connection.
func (c *Call) Close() {
	_ = c.Resp.Body.Close()
	c.cancel(nil)
}

// Send makes one upstream call for the client request in (its path, query
// and headers) with body and the target's credential, trying the target's
// base URLs in order while the connection itself fails.
func (r *Relay) Send(ctx context.Context, in *http.Request, body []byte, t Target) (*Call, error) {
	bases := t.BaseURLs
	if len(bases) == 0 {
		bases = []string{r.cfg.DefaultURL}
	}
	hdr := OutboundHeaders(in.Header)
	setCredential(hdr, t)
	var lastErr error
	for i, base := range bases {
		u := strings.TrimRight(base, "/") + in.URL.Path
		if in.URL.RawQuery != "" {
			u += "?" + in.URL.RawQuery
		}
		cctx, cancel := context.WithCancelCause(ctx)
		out, err := http.NewRequestWithContext(cctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			cancel(nil)
			return nil, err
		}
		// The transport may hold an attempt's header map after it fails:
		// a further attempt gets its own copy; the first needs none.
		out.Header = hdr
		if i > 0 {
			out.Header = hdr.Clone()
		}
		// The transport itself, not an http.Client: a RoundTripper never
		// follows a redirect. Go drops Authorization on a cross-host
		// redirect but not x-api-key, so following one would hand the
		// account's key to whatever host the upstream (or whoever sits in
		// its place) names; the 3xx goes back to the client as an answer.
		// It also keeps the client's frames off the request goroutine's
		// stack, which stays small for the whole stream (DESIGN.md).
		resp, err := r.rt.RoundTrip(out)
		if err == nil {
			return &Call{Resp: resp, cancel: cancel}, nil
		}
		cancel(nil)
		lastErr = &url.Error{Op: "Post", URL: u, Err: err} // as http.Client reports it
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// IsSSE reports whether the answer is an event stream.
func IsSSE(h http.Header) bool {
	return strings.HasPrefix(strings.ToLower(h.Get("Content-Type")), "text/event-stream")
}

// IsTimeout reports a deadline or a transport timeout.
func IsTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}

// RedactURLError keeps the failure's kind without the URL (whose query
// could carry something) or any header.
func RedactURLError(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap().Error()
	}
	return err.Error()
}
