package server

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

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/admission"
	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/refresh"
	"github.com/claude-route/claude-route/usage"
)

type ginContext = gin.Context

// storeBudget bounds the store work done before a request goes upstream.
const storeBudget = 900 * time.Millisecond

// messages proxies POST /v1/messages: the only counted endpoint.
func (s *Server) messages(c *ginContext) { s.proxy(c, true) }

// countTokens proxies POST /v1/messages/count_tokens. Clients fire many of
// these at start-up, so it is never counted against quotas.
func (s *Server) countTokens(c *ginContext) { s.proxy(c, false) }

// request is one customer request as the proxy handles it.
type request struct {
	cl      *caller
	body    []byte
	model   string
	family  string
	stream  bool
	counted bool
	quota   *ratelimit.Result // nil when the family is unlimited or not counted
	acct    accounts.Account
	start   time.Time
	sent    bool // the body went upstream: its buffer is not recycled
}

func (s *Server) proxy(c *ginContext, counted bool) {
	w, r := c.Writer, c.Request
	ctx := r.Context()
	// Authentication first: a request without a valid key learns nothing
	// else, and the body of a stranger is never read. The store gets a fixed
	// budget before the upstream call: a hung store answers 503 within a
	// second instead of holding the client.
	actx, cancel := context.WithTimeout(ctx, storeBudget)
	cl, herr := s.authenticate(actx, r.Header)
	cancel()
	if herr != nil {
		s.metrics.request("", "", herr.status)
		herr.write(w)
		return
	}
	req, herr := s.readBody(w, r)
	if herr != nil {
		s.metrics.request(cl.tier.Name, "", herr.status)
		herr.write(w)
		return
	}
	// A body that never went upstream is no longer read by anyone when the
	// handler returns: its buffer is recycled.
	defer func() {
		if !req.sent {
			s.bufs.put(req.body)
		}
	}()
	req.counted, req.start = counted, s.d.Clock.Now()
	req.cl = cl
	s.resolveAlias(req)
	req.family = s.d.Tiers.FamilyOf(req.model)
	if !cl.tier.Allows(req.family) {
		s.metrics.request(cl.tier.Name, req.family, http.StatusForbidden)
		(&httpError{status: http.StatusForbidden, typ: errPermission,
			msg: fmt.Sprintf("%s tier can only use %s models", cl.tier.Title(), cl.tier.AllowedText())}).write(w)
		return
	}
	// A fresh budget: reading a large body from a slow client must not eat it.
	sctx, cancel := context.WithTimeout(ctx, storeBudget)
	defer cancel()
	if herr := s.admit(sctx, req); herr != nil {
		s.metrics.request(cl.tier.Name, req.family, herr.status)
		s.log.WithFields(logrus.Fields{"key": cl.rec.ID, "tier": cl.tier.Name, "model": req.model, "status": herr.status}).Info("refused: " + herr.msg)
		s.refund(req) // a no-op when the quota itself refused
		if req.quota != nil {
			setQuotaHeaders(w.Header(), *req.quota)
		}
		herr.write(w)
		return
	}
	req.sent = true
	status := s.forward(c, req)
	s.metrics.request(cl.tier.Name, req.family, status)
	// One line per forwarded request: what an operator greps for at 3 a.m.
	s.log.WithFields(logrus.Fields{
		"key": cl.rec.ID, "tier": cl.tier.Name, "account": req.acct.Name, "model": req.model,
		"stream": req.stream, "status": status, "ms": s.d.Clock.Now().Sub(req.start).Milliseconds(),
	}).Info(r.URL.Path)
}

// readBody reads the whole body (we need the model, and reading it before
// answering avoids golang/go#40747) within the size limit, presized from
// Content-Length, and reads model and stream from it exactly as the
// upstream will (admission.ScanBody).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (*request, *httpError) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		return nil, &httpError{status: http.StatusBadRequest, typ: errInvalidRequest,
			msg: "Content-Type must be application/json, got " + strconv.Quote(ct)}
	}
	body, err := s.bufs.readSized(w, r.Body, r.ContentLength, s.cfg.MaxBodyBytes)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return nil, &httpError{status: http.StatusRequestEntityTooLarge, typ: errRequestTooLarge,
				msg: fmt.Sprintf("Request exceeds the maximum size of %d bytes", s.cfg.MaxBodyBytes)}
		}
		return nil, &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: "could not read the request body"}
	}
	f, err := admission.ScanBody(body)
	if err != nil {
		s.bufs.put(body)
		var be *admission.BodyError
		if errors.As(err, &be) {
			return nil, &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: be.Msg}
		}
		return nil, &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: "could not read the request body", cause: err}
	}
	return &request{body: body, model: f.Model, stream: f.Stream}, nil
}

func (s *Server) quotaRequest(cl *caller, family string, limit int) ratelimit.Request {
	return ratelimit.Request{Subject: cl.hash, Family: family, Limit: limit, Window: time.Duration(s.d.Tiers.Window)}
}

// admit binds the key if needed, takes a place in the family's window and
// loads the account: for a bound key, one pipelined round trip.
func (s *Server) admit(ctx context.Context, req *request) *httpError {
	cl := req.cl
	if cl.account == "" {
		if herr := s.bind(ctx, cl); herr != nil {
			return herr
		}
	}
	pipe := s.d.Redis.Pipeline()
	var pending *ratelimit.Pending
	limit, limited := cl.tier.Quota(req.family)
	if req.counted && limited {
		pending = s.d.Limiter.QueueAdmit(ctx, pipe, s.quotaRequest(cl, req.family, limit))
	}
	acctCmd := s.d.Accounts.QueueGet(ctx, pipe, cl.account)
	stateCmds := s.d.Pool.QueueState(ctx, pipe, cl.tier.Name, cl.account)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
		if pending != nil {
			// The script may have run with its answer lost: take the place back.
			s.bg.Add(1)
			go func() {
				defer s.bg.Done()
				actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = pending.Abandon(actx)
			}()
		}
		return storeDown(err)
	}
	if pending != nil {
		res, err := pending.Result(ctx)
		if err != nil {
			return storeDown(err)
		}
		req.quota = &res
		if !res.Allowed {
			s.metrics.quotaRefusals.WithLabelValues(cl.tier.Name, req.family).Inc()
			return &httpError{status: http.StatusTooManyRequests, typ: errRateLimit, retryAfter: res.RetryAfter,
				msg: fmt.Sprintf("Rate limit exceeded for %s (%d/%d in %s)", req.family, res.Count, res.Limit, windowText(time.Duration(s.d.Tiers.Window)))}
		}
		s.log.WithFields(logFields(cl)).Debugf("rate limit check passed: %d/%d requests", res.Count, res.Limit)
	}
	state, err := stateCmds.Result()
	if err != nil {
		return storeDown(err)
	}
	acct, aerr := accounts.FromHash(cl.account, acctCmd.Val())
	if !state.InTier || state.Blacklisted || aerr != nil {
		// The bound account was blacklisted or removed: move the key.
		if herr := s.bind(ctx, cl); herr != nil {
			return herr
		}
		if acct, aerr = s.d.Accounts.Get(ctx, cl.account); aerr != nil {
			return storeDown(aerr)
		}
	} else {
		s.log.WithFields(logFields(cl)).Debugf("using assigned account: %s (slots: %d/%d)", cl.account, state.Used, cl.tier.Slots)
	}
	if now := s.d.Clock.Now(); state.LimitedTill.After(now) && !state.Blacklisted && state.InTier {
		return &httpError{status: http.StatusTooManyRequests, typ: errRateLimit, retryAfter: state.LimitedTill.Sub(now),
			msg: "The upstream account serving this key has reached its usage limit; retry after " + state.LimitedTill.UTC().Format(time.RFC3339)}
	}
	req.acct = acct
	return nil
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

func windowText(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	}
	return d.String()
}

func setQuotaHeaders(h http.Header, q ratelimit.Result) {
	h.Set("X-Ratelimit-Limit", strconv.Itoa(q.Limit))
	h.Set("X-Ratelimit-Remaining", strconv.Itoa(q.Remaining))
	h.Set("X-Ratelimit-Reset", q.Reset.UTC().Format(time.RFC3339))
}

// refund gives the request's place back: it produced no answer.
func (s *Server) refund(req *request) {
	if req.quota == nil || !req.quota.Allowed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.d.Limiter.Refund(ctx, *req.quota); err != nil {
		s.log.WithFields(logFields(req.cl)).WithError(err).Warn("quota refund failed")
		return
	}
	req.quota.Remaining++
	req.quota.Allowed = false // refunded once only
}

// verdict is what an upstream answer means for the account.
type verdict int

const (
	pass      verdict = iota // hand the answer to the client
	blacklist                // the account's credential is dead: blacklist, move, retry
	expired                  // OAuth token expired: refresh, retry
)

// orgGone are how the upstream words "this account is gone for good" in a
// 400 or 403. They are matched at the start of the message only: the API
// echoes client-supplied values (e.g. unknown anthropic-beta names) later in
// its messages, and a customer must not be able to blacklist an account.
var orgGone = []string{
	"this organization has been disabled", "your organization has been disabled", "organization has been disabled",
	"oauth authentication is currently not allowed for this organization",
}

// classify reads an upstream error answer (status and Anthropic error body).
func classify(status int, body []byte) (verdict, string) {
	if status < 400 || status == http.StatusTooManyRequests || status >= 500 {
		return pass, ""
	}
	var e struct {
		Error struct{ Type, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	msg := strings.ToLower(strings.TrimSpace(e.Error.Message))
	reason := fmt.Sprintf("upstream %d %s: %s", status, e.Error.Type, truncate(e.Error.Message, 160))
	switch {
	case status == http.StatusUnauthorized && strings.Contains(msg, "token has expired"):
		return expired, reason
	case status == http.StatusUnauthorized:
		// Only the account's credential can earn a 401: the client's own
		// credential headers never go upstream.
		return blacklist, reason
	case status == http.StatusBadRequest || status == http.StatusForbidden:
		for _, p := range orgGone {
			if strings.HasPrefix(msg, p) {
				return blacklist, reason
			}
		}
	}
	return pass, ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// forward sends the request upstream, moving to another account once when
// the bound one turns out dead (or refreshing an expired token), then
// streams the answer to the client. It returns the status sent.
func (s *Server) forward(c *ginContext, req *request) int {
	w, r := c.Writer, c.Request
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		resp, err := s.send(ctx, r, req)
		if err != nil {
			s.refund(req)
			return s.upstreamFailed(w, req, err)
		}
		if resp.StatusCode >= 400 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(body))
			// The request is retried once, on a fresh token or another account,
			// only while nothing has reached the client.
			retry, herr := s.accountFailed(ctx, req, resp.StatusCode, body)
			if retry && attempt == 0 {
				continue
			}
			if retry {
				herr = &httpError{status: http.StatusServiceUnavailable, typ: errOverloaded,
					msg: "The upstream account serving this key failed; please retry"}
			}
			if herr != nil {
				s.refund(req)
				if req.quota != nil {
					setQuotaHeaders(w.Header(), *req.quota)
				}
				herr.write(w)
				return herr.status
			}
		}
		return s.relay(ctx, w, req, resp)
	}
}

// accountFailed acts on an upstream refusal that is the account's fault,
// not the request's: an expired OAuth token is refreshed, a dead credential
// blacklisted and the key moved. retry reports that req now holds a
// credential worth one more try; herr is set when the proxy must answer
// itself, because relaying the upstream's 401 would tell the customer that
// their own key is bad.
func (s *Server) accountFailed(ctx context.Context, req *request, status int, body []byte) (retry bool, herr *httpError) {
	v, reason := classify(status, body)
	log := s.log.WithFields(logFields(req.cl)).WithField("account", req.acct.Name)
	switch v {
	case expired:
		if s.d.Refresher == nil || req.acct.Kind != accounts.OAuth {
			return false, nil
		}
		creds, err := s.d.Refresher.RefreshNow(ctx, req.acct.Name, req.acct.AccessToken)
		if err == nil {
			req.acct.AccessToken, req.acct.RefreshToken, req.acct.ExpiresAt = creds.AccessToken, creds.RefreshToken, creds.ExpiresAt
			return true, nil
		}
		log.WithError(err).Warn("token refresh after an expired-token answer failed")
		if !errors.Is(err, refresh.ErrInvalidGrant) && !errors.Is(err, refresh.ErrGaveUp) {
			return false, &httpError{status: http.StatusServiceUnavailable, typ: errAPI, cause: err,
				msg: "Service temporarily unavailable: the upstream credential is being renewed, please retry"}
		}
		// The refresh token is dead for good: the account is gone; move the key.
		reason = "oauth refresh given up: " + err.Error()
		if errors.Is(err, refresh.ErrInvalidGrant) {
			reason = "refresh token rejected (invalid_grant)"
		}
		fallthrough
	case blacklist:
		if v == blacklist && req.acct.Kind == accounts.OAuth {
			// A token refreshed by another replica while this request was
			// in flight is stale, not dead: retry with the current one.
			if cur, err := s.d.Accounts.Get(ctx, req.acct.Name); err == nil && cur.AccessToken != req.acct.AccessToken {
				req.acct = cur
				return true, nil
			}
		}
		if err := s.d.Pool.Blacklist(ctx, req.acct.Name, reason); err != nil {
			return false, storeDown(err)
		}
		if herr := s.bind(ctx, req.cl); herr != nil {
			return false, herr
		}
		acct, err := s.d.Accounts.Get(ctx, req.cl.account)
		if err != nil {
			return false, storeDown(err)
		}
		req.acct = acct
		return true, nil
	}
	return false, nil
}

// send makes one upstream call with the account's credential, trying the
// account's base URLs in order while the connection itself fails.
func (s *Server) send(ctx context.Context, in *http.Request, req *request) (*http.Response, error) {
	if req.acct.Kind == accounts.OAuth && s.d.Refresher != nil && !req.acct.ExpiresAt.IsZero() && !req.acct.ExpiresAt.After(s.d.Clock.Now()) {
		// Known to be expired: refresh (or wait for the replica doing it) first.
		if creds, err := s.d.Refresher.RefreshNow(ctx, req.acct.Name, req.acct.AccessToken); err == nil {
			req.acct.AccessToken, req.acct.RefreshToken, req.acct.ExpiresAt = creds.AccessToken, creds.RefreshToken, creds.ExpiresAt
		}
	}
	bases := req.acct.BaseURLs
	if len(bases) == 0 {
		bases = []string{s.cfg.UpstreamURL}
	}
	var lastErr error
	for _, base := range bases {
		u := strings.TrimRight(base, "/") + in.URL.Path
		if in.URL.RawQuery != "" {
			u += "?" + in.URL.RawQuery
		}
		out, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(req.body))
		if err != nil {
			return nil, err
		}
		out.Header = upstreamHeaders(in.Header)
		switch req.acct.Kind {
		case accounts.OAuth:
			out.Header.Set("Authorization", "Bearer "+req.acct.AccessToken)
			mergeBeta(out.Header, OAuthBeta)
		default:
			out.Header.Set("X-Api-Key", req.acct.APIKey)
		}
		t0 := time.Now()
		resp, err := s.upstream.Do(out)
		if err == nil {
			s.metrics.upstreamHeaders.WithLabelValues(req.cl.tier.Name).Observe(time.Since(t0).Seconds())
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// upstreamFailed answers a request whose upstream call produced nothing.
func (s *Server) upstreamFailed(w http.ResponseWriter, req *request, err error) int {
	if req.quota != nil {
		setQuotaHeaders(w.Header(), *req.quota)
	}
	var status int
	var herr *httpError
	switch {
	case errors.Is(err, context.Canceled):
		return 499 // the client left; nothing to answer
	case isTimeout(err):
		status = http.StatusGatewayTimeout
		herr = &httpError{status: status, typ: errTimeout, msg: "The upstream did not answer in time"}
	default:
		status = http.StatusBadGateway
		herr = &httpError{status: status, typ: errAPI, msg: "The upstream could not be reached"}
	}
	s.log.WithFields(logFields(req.cl)).WithField("account", req.acct.Name).Warnf("upstream call failed: %s", redactURLError(err))
	herr.write(w)
	return status
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}

// redactURLError keeps the failure's kind without any URL query or header.
func redactURLError(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap().Error()
	}
	return err.Error()
}

// relay copies the upstream answer to the client as it arrives, flushing
// each read so every SSE event reaches the client at once, and reads the
// usage from the same bytes on the way.
func (s *Server) relay(ctx context.Context, w http.ResponseWriter, req *request, resp *http.Response) int {
	defer resp.Body.Close()
	cl := req.cl
	status := resp.StatusCode
	if status == http.StatusTooManyRequests {
		s.upstreamLimited(req, resp)
	}
	if status == http.StatusTooManyRequests || status >= 500 {
		s.refund(req)
	}
	copyResponseHeaders(w.Header(), resp.Header)
	if req.quota != nil {
		setQuotaHeaders(w.Header(), *req.quota)
	}
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	isSSE := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	var sse *usage.SSETap
	var js *usage.JSONTap
	if isSSE {
		sse = usage.NewSSETap()
		s.metrics.activeStreams.Inc()
		defer s.metrics.activeStreams.Dec()
	} else {
		js = usage.NewJSONTap(4 << 20)
	}
	buf := make([]byte, 32<<10)
	first := true
	var readErr, writeErr error
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if first {
				s.metrics.ttfb.WithLabelValues(cl.tier.Name).Observe(s.d.Clock.Now().Sub(req.start).Seconds())
				first = false
			}
			if sse != nil {
				_, _ = sse.Write(buf[:n])
			} else {
				_, _ = js.Write(buf[:n])
			}
			if _, writeErr = w.Write(buf[:n]); writeErr == nil {
				writeErr = rc.Flush()
			}
			if writeErr != nil {
				break // the client left: its context cancels the upstream call
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
	}
	if readErr != nil && writeErr == nil && ctx.Err() == nil {
		// The upstream broke mid-answer: end the stream with an error event
		// the SDKs raise, and give the place back: no full answer was given.
		s.log.WithFields(logFields(cl)).WithField("account", req.acct.Name).Warnf("upstream stream broke: %s", redactURLError(readErr))
		if isSSE {
			_, _ = w.Write(sseError(errAPI, "The upstream connection was interrupted; please retry"))
			_ = rc.Flush()
		}
		s.refund(req)
	}
	var u usage.Usage
	var ok bool
	if sse != nil {
		u, ok = sse.Usage()
	} else {
		u, ok = js.Usage()
	}
	if ok && status < 400 && s.d.Usage != nil {
		s.recordUsage(req, u)
	}
	return status
}

// recordUsage counts the answer's tokens. The recorder only adds them to
// this replica's totals in memory (App.Run flushes them once a second), so
// it costs the request no Redis command and needs no goroutine.
func (s *Server) recordUsage(req *request, u usage.Usage) {
	tier := req.cl.tier.Name
	s.metrics.tokens.WithLabelValues(tier, "input").Add(float64(u.InputTokens))
	s.metrics.tokens.WithLabelValues(tier, "output").Add(float64(u.OutputTokens))
	if err := s.d.Usage.Record(context.Background(), req.cl.hash, req.acct.Name, req.family, u); err != nil {
		s.log.WithField("account", req.acct.Name).WithError(err).Warn("could not record usage")
	}
}

// upstreamLimited handles a 429: when the subscription's own usage limit is
// reached, the account is marked limited until the reset the upstream gives
// (the binding stays), and the client learns when to come back.
func (s *Server) upstreamLimited(req *request, resp *http.Response) {
	h := resp.Header
	rejected := false
	var until int64
	for _, p := range []string{"", "-5h", "-7d"} {
		if strings.EqualFold(h.Get("Anthropic-Ratelimit-Unified"+p+"-Status"), "rejected") {
			rejected = true
			if v, err := strconv.ParseInt(h.Get("Anthropic-Ratelimit-Unified"+p+"-Reset"), 10, 64); err == nil && v > until {
				until = v
			}
		}
	}
	if v, err := strconv.ParseInt(h.Get("Anthropic-Ratelimit-Unified-Reset"), 10, 64); rejected && err == nil && v > until {
		until = v
	}
	if !rejected {
		return
	}
	now := s.d.Clock.Now()
	if until <= now.Unix() {
		until = now.Add(5 * time.Minute).Unix()
	}
	if err := s.d.Pool.Limit(context.Background(), req.acct.Name, time.Unix(until, 0)); err != nil {
		s.log.WithError(err).Warn("could not mark the account limited")
	}
	if h.Get("Retry-After") == "" {
		h.Set("Retry-After", strconv.FormatInt(ceilSeconds(time.Unix(until, 0).Sub(now)), 10))
	}
}
