package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/claude-route/claude-route/accounts"
)

// Kind is what one attempt means before anything reached the client.
type Kind int

const (
	// Answer: hand the upstream's answer to the client (a success, or an
	// error that is the request's own).
	Answer Kind = iota
	// Overflow: the account cannot serve now and the upstream provably
	// did not process the request (a rejected 429, 529, 5xx, a connection
	// that could not be made); another account may.
	Overflow
	// Expired: the OAuth token expired; refresh it and try again.
	Expired
	// Dead: the account's credential is dead; blacklist it, move the key,
	// try again.
	Dead
	// Abandoned: the client left before the upstream answered.
	Abandoned
	// Lost: no answer came, but the request may have reached the upstream
	// (a header timeout, a connection broken after the request was sent):
	// it is never sent again, the upstream may still be working on it.
	Lost
	// Shutdown: the server's grace period ended before the upstream
	// answered.
	Shutdown
)

// Overflow reasons, the claude_route_overflow_total reason label.
const (
	ReasonLimited       = "limited" // known limited or cooling: not called at all
	ReasonRejected      = "rejected"
	ReasonRateLimited   = "rate_limited" // a plain 429: an API key's or a relay's own limit
	ReasonOverloaded    = "overloaded"
	ReasonServerError   = "server_error"
	ReasonConnection    = "connection"
	ReasonHeaderTimeout = "header_timeout"
)

// Attempt is the one outcome of an upstream call before its answer is
// relayed: what it means for the request and for the account.
type Attempt struct {
	Kind Kind
	// Reason is the overflow reason (Overflow) or the blacklist reason (Dead).
	Reason string
	// LimitedUntil is set by a rejected 429: the account's own usage limit
	// holds until then.
	LimitedUntil time.Time
	// Failure counts towards the account's passive health (529, 5xx,
	// connection failure, header timeout).
	Failure bool
	// Status is the upstream's status, 0 when no answer came.
	Status int
	// Err is the transport error when no answer came.
	Err error
	// Call is the answer to relay (nil when none came).
	Call *Call
}

// Judge reads an attempt's status (and, for an error the account may be at
// fault for, its error body, which stays readable for relaying).
func Judge(ctx context.Context, call *Call, err error, now time.Time) Attempt {
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return Attempt{Kind: Abandoned, Err: err}
		case errors.Is(err, ErrShutdown):
			return Attempt{Kind: Shutdown, Err: err}
		case NeverSent(err):
			return Attempt{Kind: Overflow, Reason: ReasonConnection, Failure: true, Err: err}
		case IsTimeout(err):
			return Attempt{Kind: Lost, Reason: ReasonHeaderTimeout, Failure: true, Err: err}
		default:
			return Attempt{Kind: Lost, Reason: ReasonConnection, Failure: true, Err: err}
		}
	}
	resp := call.Resp
	a := Attempt{Kind: Answer, Status: resp.StatusCode, Call: call}
	switch st := resp.StatusCode; {
	case st == http.StatusTooManyRequests:
		if until, ok := accounts.RejectedUntil(resp.Header, now); ok {
			a.Kind, a.Reason, a.LimitedUntil = Overflow, ReasonRejected, until
		} else {
			// A plain 429 (no unified headers), as API-key accounts and
			// Anthropic-compatible relays send it: the account's own limit
			// too. It rests for retry-after and another account serves.
			a.Kind, a.Reason, a.LimitedUntil = Overflow, ReasonRateLimited, plainLimitUntil(resp.Header, now)
		}
	case st == 529:
		a.Kind, a.Reason, a.Failure = Overflow, ReasonOverloaded, true
	case st >= 500:
		a.Kind, a.Reason, a.Failure = Overflow, ReasonServerError, true
	case st >= 400:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		a.Kind, a.Reason = classify(st, body)
	}
	return a
}

// A plain 429 limits its account for its retry-after, at most
// plainLimitCap (a relay asking for hours should not take an account out
// for that long on one answer), plainLimitDefault when it gives none.
const (
	plainLimitCap     = 10 * time.Minute
	plainLimitDefault = time.Minute
)

// plainLimitUntil reads a plain 429's retry-after (seconds or an HTTP
// date).
func plainLimitUntil(h http.Header, now time.Time) time.Time {
	d := plainLimitDefault
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 {
			d = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(v); err == nil && t.After(now) {
			d = t.Sub(now)
		}
	}
	if d > plainLimitCap {
		d = plainLimitCap
	}
	return now.Add(d)
}

// orgGone are how the upstream words "this account is gone for good" in a
// 400 or 403. They are matched at the start of the message only: the API
// echoes client-supplied values (e.g. unknown anthropic-beta names) later in
// its messages, and a customer must not be able to blacklist an account.
var orgGone = []string{
	"this organization has been disabled", "your organization has been disabled", "organization has been disabled",
	"oauth authentication is currently not allowed for this organization",
}

// classify reads an upstream 4xx (other than 429) and its Anthropic error body.
func classify(status int, body []byte) (Kind, string) {
	var e struct {
		Error struct{ Type, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	msg := strings.ToLower(strings.TrimSpace(e.Error.Message))
	reason := fmt.Sprintf("upstream %d %s: %s", status, e.Error.Type, truncate(e.Error.Message, 160))
	switch {
	case status == http.StatusUnauthorized && strings.Contains(msg, "token has expired"):
		return Expired, reason
	case status == http.StatusUnauthorized:
		// Only the account's credential can earn a 401: the client's own
		// credential headers never go upstream.
		return Dead, reason
	case status == http.StatusForbidden && strings.HasPrefix(msg, "oauth token has been revoked"):
		// What the API answers for a revoked OAuth token: dead as a 401.
		return Dead, "oauth token revoked: " + reason
	case status == http.StatusBadRequest || status == http.StatusForbidden:
		for _, p := range orgGone {
			if strings.HasPrefix(msg, p) {
				return Dead, reason
			}
		}
	}
	return Answer, ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Facts are what the refund decision looks at.
type Facts struct {
	// Status is the status the client got (the upstream's, or the
	// proxy's own when it answered itself); 0 when nothing was answered.
	Status int
	// Transport is a failure reaching the upstream or reading its answer
	// (an idle timeout included).
	Transport error
	// SSE: the answer was an event stream.
	SSE bool
	// SawStop: the stream carried message_stop.
	SawStop bool
	// SawError: the stream carried an `event: error`.
	SawError bool
	// ClientGone: the client abandoned the request (before the upstream's
	// headers or during the answer).
	ClientGone bool
	// Shutdown: the server's grace period cut the answer.
	Shutdown bool
}

// Refund decides whether a counted request gives its quota place back
// (docs/contract.md): a request counts when it produced an answer, or when
// the client itself abandoned it. Any error status, a transport failure,
// a stream that ended with `event: error` or without message_stop produced
// no answer and is refunded. A stream that carried message_stop was
// delivered whole, whatever broke after it; a stream cut by the server's
// shutdown is refunded even if the client left meanwhile (the cut closed
// its connection).
func Refund(f Facts) bool {
	switch {
	case f.SSE && f.SawStop && !f.SawError && f.Status >= 200 && f.Status < 300:
		return false
	case f.Shutdown:
		return true
	case f.ClientGone:
		return false
	case f.Status < 200 || f.Status >= 300:
		return true
	case f.Transport != nil:
		return true
	case f.SSE && (f.SawError || !f.SawStop):
		return true
	}
	return false
}

// ErrShutdown ends a call cut by the server's shutdown (Relay.Cut).
var ErrShutdown = errors.New("the server is shutting down")

// ErrIdle ends an answer from which no byte came for the idle timeout.
var ErrIdle = errors.New("no data from the upstream within the idle timeout")
