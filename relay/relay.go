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
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// Target is the account an attempt is made with.
type Target struct {
	// BaseURL is the upstream to call; empty means Config.DefaultURL.
	// Trying an account's other base URLs is the router's decision.
	BaseURL string
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
	// stop ends when the server's grace period is over (Cut).
	stop context.Context
	cut  context.CancelFunc
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
	stop, cut := context.WithCancel(context.Background())
	return &Relay{cfg: cfg, rt: rt, stop: stop, cut: cut}
}

// IdleTimeout is the idle limit in use.
func (r *Relay) IdleTimeout() time.Duration { return r.cfg.IdleTimeout }

// Call is one upstream call whose headers have come. Close it.
type Call struct {
	Resp *http.Response
	// ctx is the upstream request's; its cause tells why it was cut.
	ctx context.Context
	// cancel ends the upstream request; the idle watchdog uses it too.
	cancel context.CancelCauseFunc
	// stop unregisters the call from the relay's shutdown cut.
	stop func() bool
}

// Close releases the call's connection.
func (c *Call) Close() {
	_ = c.Resp.Body.Close()
	c.stop()
	c.cancel(nil)
}

// Send makes one upstream call for the client request in (its path, query
// and headers) with body and the target's credential. It never sends the
// body twice: whether another try is worth it is the caller's policy
// (NeverSent tells it when the upstream cannot have seen this one).
func (r *Relay) Send(ctx context.Context, in *http.Request, body []byte, t Target) (*Call, error) {
	base := t.BaseURL
	if base == "" {
		base = r.cfg.DefaultURL
	}
	hdr := OutboundHeaders(in.Header)
	setCredential(hdr, t)
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
	out.Header = hdr
	// A shutdown's cut ends the call too (Relay.Cut).
	stop := context.AfterFunc(r.stop, func() { cancel(ErrShutdown) })
	// The transport itself, not an http.Client: a RoundTripper never
	// follows a redirect. Go drops Authorization on a cross-host
	// redirect but not x-api-key, so following one would hand the
	// account's key to whatever host the upstream (or whoever sits in
	// its place) names; the 3xx goes back to the client as an answer.
	resp, err := r.rt.RoundTrip(out)
	if err == nil {
		return &Call{Resp: resp, ctx: cctx, cancel: cancel, stop: stop}, nil
	}
	stop()
	if errors.Is(context.Cause(cctx), ErrShutdown) {
		err = ErrShutdown
	}
	cancel(nil)
	return nil, &url.Error{Op: "Post", URL: u, Err: err} // as http.Client reports it
}

// NeverSent reports a failed call that provably never reached the
// upstream: the connection could not be made (a refused or failed dial, a
// name that does not resolve), so not a byte of the request left. Any
// other failure (a header timeout, a connection broken after the request
// was written) may have been received and worked on.
func NeverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.Is(err, syscall.ECONNREFUSED)
}

// Cut ends every call in flight now and later with ErrShutdown: a stream
// being relayed ends with an `event: error` that says the server is
// shutting down, and its place is given back (Result.Shutdown).
func (r *Relay) Cut() { r.cut() }

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
