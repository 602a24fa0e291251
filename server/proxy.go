package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/admission"
	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/relay"
	"github.com/claude-route/claude-route/route"
	"github.com/claude-route/claude-route/usage"
)

type ginContext = gin.Context

// storeBudget bounds the store work done before a request goes upstream.
const storeBudget = 900 * time.Millisecond

// messages proxies POST /v1/messages: the only counted endpoint.
func (s *Server) messages(c *ginContext) { s.proxy(c, true) }

// countTokensHandler proxies POST /v1/messages/count_tokens. Clients fire
// many of these at start-up, so it is never counted against quotas and
// takes no concurrency place.
func (s *Server) countTokensHandler(c *ginContext) { s.proxy(c, false) }

// request is one customer request as the proxy handles it.
type request struct {
	cl      *caller
	body    []byte
	model   string
	modelAt [2]int // where model lies in body (admission.Fields.ModelAt)
	family  string
	stream  bool
	counted bool
	quota   *ratelimit.Result // nil when the family is unlimited or not counted
	acct    accounts.Account
	start   time.Time
	// ticket holds the key's place, the body's bytes and the quota place.
	ticket *admission.Ticket
	// state is the bound account's pool state read in admission.
	state accounts.State
	// served names the account that answered (an overflow one, maybe).
	served string
}

func (s *Server) proxy(c *ginContext, counted bool) {
	// The ticket's holdings (the key's place, the body's bytes) are
	// released when the request ends, however it ends (answer, refusal,
	// client gone, panic).
	tk := &admission.Ticket{}
	defer s.settle(c.Request.Context(), tk)
	req := s.receive(c, counted, tk)
	if req == nil || !s.admitted(c, req) {
		return // refused: answered
	}
	// From here on the body belongs to the upstream call: its buffer is
	// not recycled. Routing sends it and relays the answer; the stream
	// runs under this frame and the router's for its whole life, and they
	// stay small (DESIGN.md, stacks).
	out := s.router.Do(c.Request.Context(), c.Writer, s.routeRequest(c.Request, req))
	s.forwarded(c.Request.URL.Path, req, s.settleOutcome(c.Writer, req, out))
}

// forwarded counts and logs a forwarded request: one line per request,
// what an operator greps for at 3 a.m.
func (s *Server) forwarded(path string, req *request, status int) {
	cl := req.cl
	s.metrics.request(cl.tier.Name, req.family, status)
	s.log.WithFields(logrus.Fields{
		"key": cl.rec.ID, "tier": cl.tier.Name, "account": req.served, "model": req.model,
		"stream": req.stream, "status": status, "ms": s.d.Clock.Now().Sub(req.start).Milliseconds(),
	}).Info(path)
}

// admitted runs the admission (binding, quota, account: package
// admission) and answers a refusal itself.
func (s *Server) admitted(c *ginContext, req *request) bool {
	cl := req.cl
	if req.counted {
		if herr := s.checkBudget(c.Request.Context(), cl); herr != nil {
			s.refuseAdmission(c.Writer, req, herr)
			return false
		}
	}
	ar := &admission.Request{Key: cl.hash, Tier: cl.tier.Name, Account: cl.account, Bind: (&binder{s: s, cl: cl}).bind}
	if limit, ok := cl.tier.Quota(req.family); ok && req.counted {
		q := s.quotaRequest(cl, req.family, limit)
		ar.Quota = &q
	}
	ad, err := s.gate.Admit(c.Request.Context(), ar, req.ticket)
	req.quota = req.ticket.Quota()
	if err != nil {
		s.refuseAdmission(c.Writer, req, s.admissionRefusal(req, err))
		return false
	}
	if s.log.IsLevelEnabled(logrus.DebugLevel) {
		s.debugAdmitted(cl, req.quota)
	}
	req.acct, req.state = ad.Account, ad.State
	return true
}

// admissionRefusal words the admission's refusal in the contract's shape.
func (s *Server) admissionRefusal(req *request, err error) *httpError {
	var herr *httpError
	switch {
	case errors.As(err, &herr):
		return herr // the binding's own
	case errors.Is(err, admission.ErrQuota) && req.quota != nil:
		res := req.quota
		s.metrics.quotaRefusals.WithLabelValues(req.cl.tier.Name, req.family).Inc()
		return &httpError{status: http.StatusTooManyRequests, typ: errRateLimit, retryAfter: res.RetryAfter, noRetry: true,
			msg: fmt.Sprintf("Rate limit exceeded for %s (%d/%d in %s)", req.family, res.Count, res.Limit, windowText(time.Duration(s.d.Tiers.Load().Window)))}
	}
	return storeDown(err)
}

func (s *Server) debugAdmitted(cl *caller, q *ratelimit.Result) {
	if q != nil {
		s.log.WithFields(logFields(cl)).Debugf("rate limit check passed: %d/%d requests", q.Count, q.Limit)
	}
	s.log.WithFields(logFields(cl)).Debugf("using assigned account: %s", cl.account)
}

// binder binds a caller's key for the admission.
type binder struct {
	s  *Server
	cl *caller
}

func (b *binder) bind(ctx context.Context) (string, error) {
	if herr := b.s.bind(ctx, b.cl); herr != nil {
		return "", herr
	}
	return b.cl.account, nil
}

// refuseAdmission answers a request the admission refused.
func (s *Server) refuseAdmission(w http.ResponseWriter, req *request, herr *httpError) {
	cl := req.cl
	s.bufs.put(req.body) // never went upstream: nobody reads it now
	s.metrics.request(cl.tier.Name, req.family, herr.status)
	s.logRefusal(cl, nil, req.model, herr)
	s.refund(req) // a no-op when the quota itself refused
	if req.quota != nil {
		setQuotaHeaders(w.Header(), *req.quota)
	}
	herr.write(w)
}

// settle ends the ticket when the request ends, however it ends (answer,
// refusal, client gone, panic): the key's place and the body's bytes go
// back, and a quota place no verdict settled (a panic) is refunded. A
// lease whose release fails expires within its TTL.
func (s *Server) settle(ctx context.Context, tk *admission.Ticket) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	tk.Release(rctx)
}

func (s *Server) quotaRequest(cl *caller, family string, limit int) ratelimit.Request {
	return ratelimit.Request{Subject: cl.hash, Family: family, Limit: limit, Window: time.Duration(s.d.Tiers.Load().Window)}
}

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

// refund gives the request's place back: it produced no answer. A
// refund the store did not take is retried in the background by the gate.
func (s *Server) refund(req *request) {
	if req.ticket == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := req.ticket.Refund(ctx); err != nil {
		s.log.WithFields(logFields(req.cl)).WithError(err).Warn("quota refund failed; retrying in the background")
	}
}

// routeRequest is what routing needs of the request, on the heap (the
// stream runs under forward's frame).
func (s *Server) routeRequest(in *http.Request, req *request) *route.Request {
	h := &answerHooks{s: s, req: req}
	return &route.Request{In: in, Body: req.body, Tier: req.cl.tier.Name, Overflows: req.cl.tier.Overflows(), Key: req.cl.hash,
		AccountConcurrency: req.cl.tier.AccountConcurrency,
		Account:            req.acct, State: req.state, Rebind: h.rebind, Log: logFields(req.cl),
		Hooks: relay.Hooks{Header: h.header, FirstByte: h.firstByte}}
}

// settleOutcome answers a refusal and settles the request from routing's
// one outcome: refund and usage.
func (s *Server) settleOutcome(w http.ResponseWriter, req *request, out route.Outcome) int {
	req.served = out.Account
	switch {
	case out.Gone:
		req.ticket.Count() // the client left before the answer: it counts
		return statusClientGone
	case out.Refused != nil:
		return s.answerSelf(w, req, s.refusal(out.Refused))
	}
	res := out.Result
	if res.Refund {
		s.refund(req)
	} else {
		req.ticket.Count()
	}
	if res.UsageOK && res.Status < 400 && s.d.Usage != nil {
		s.recordUsage(req, res.Usage)
	}
	// A key sold from stock starts its validity with its first answer that
	// counts (a refunded one does not).
	if res.Status < 400 && !res.Refund && req.cl.rec.NotActivated() {
		s.activate(req.cl)
	}
	return res.Status
}

// refusal turns routing's refusal into the contract's error.
func (s *Server) refusal(err error) *httpError {
	var herr *httpError
	if errors.As(err, &herr) {
		return herr
	}
	var rf *route.Refusal
	if errors.As(err, &rf) {
		return &httpError{status: rf.Status, typ: rf.Type, msg: rf.Msg, retryAfter: rf.RetryAfter, noRetry: rf.NoRetry, cause: rf.Cause}
	}
	return storeDown(err)
}

// answerSelf answers with the proxy's own error; no answer was produced,
// so the place is given back.
func (s *Server) answerSelf(w http.ResponseWriter, req *request, herr *httpError) int {
	s.logRefusal(req.cl, nil, req.model, herr)
	if relay.Refund(relay.Facts{Status: herr.status}) {
		s.refund(req)
	}
	if req.quota != nil {
		setQuotaHeaders(w.Header(), *req.quota)
	}
	herr.write(w)
	return herr.status
}

// answerHooks act on a relayed answer at the moments only the server
// understands.
type answerHooks struct {
	s   *Server
	req *request
}

// header settles what it can before the status line: an error status is
// refunded before the key's quota headers are set, so they show it.
func (h *answerHooks) header(status int, hdr http.Header) {
	if relay.Refund(relay.Facts{Status: status}) {
		h.s.refund(h.req)
	}
	if h.req.quota != nil {
		setQuotaHeaders(hdr, *h.req.quota)
	}
}

func (h *answerHooks) firstByte() {
	h.s.metrics.ttfb.WithLabelValues(h.req.cl.tier.Name).Observe(h.s.d.Clock.Now().Sub(h.req.start).Seconds())
}

// rebind moves the key off its dead account (routing found it dead).
func (h *answerHooks) rebind(ctx context.Context) (accounts.Account, error) {
	s, cl := h.s, h.req.cl
	if herr := s.bind(ctx, cl); herr != nil {
		return accounts.Account{}, herr
	}
	acct, err := s.d.Accounts.Get(ctx, cl.account)
	if err != nil {
		return accounts.Account{}, storeDown(err)
	}
	return acct, nil
}

// recordUsage counts the answer's tokens. The recorder only adds them to
// this replica's totals in memory (App.Run flushes them once a second), so
// it costs the request no Redis command and needs no goroutine.
func (s *Server) recordUsage(req *request, u usage.Usage) {
	tier := req.cl.tier.Name
	s.metrics.tokens.WithLabelValues(tier, "input").Add(float64(u.InputTokens))
	s.metrics.tokens.WithLabelValues(tier, "output").Add(float64(u.OutputTokens))
	// A long-context request is recorded under its own model name, so every
	// window prices it at the long-context rates.
	model := s.d.Tiers.UsageModel(req.model, u.InputTokens+u.CacheCreationInputTokens+u.CacheReadInputTokens)
	if err := s.d.Usage.RecordModel(context.Background(), req.cl.hash, req.served, req.family, model, u); err != nil {
		s.log.WithField("account", req.served).WithError(err).Warn("could not record usage")
	}
	s.addSpend(req.cl, req.family, model, u)
}
