package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

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
	s       *Server
	c       *ginContext
	cl      *caller // the admission's scope
	body    []byte
	model   string
	modelAt [2]int // where model lies in body (admission.Fields.ModelAt)
	stream  bool
	start   time.Time
	// adm holds the key's place, the body's bytes and the quota place.
	adm *admission.Admission
	// served names the account that answered (an overflow one, maybe).
	served string
	// routed and hooks are routing's view of the request (routeRequest),
	// kept here: one allocation per request instead of three.
	routed route.Request
	hooks  answerHooks
}

// proxy reads Admit → Route → Settle. The admission ends however the
// request ends (answer, refusal, client gone, panic): Admit gives back
// what a refused request took, and the deferred Release what an admitted
// one holds.
func (s *Server) proxy(c *ginContext, counted bool) {
	ctx := c.Request.Context()
	req := &request{s: s, c: c}
	adm, err := s.gate.Admit(ctx, admission.Request{Key: clientKey(c.Request.Header), Counted: counted,
		Body: req, BodyMax: s.bodyMax(c.Request)})
	if err != nil {
		s.refuse(c, req, err)
		return
	}
	defer adm.Release()
	req.adm, req.cl = adm, &adm.Caller
	if s.log.IsLevelEnabled(logrus.DebugLevel) {
		s.debugAdmitted(req)
	}
	// From here on the body belongs to the upstream call: its buffer is
	// not recycled. Routing sends it and relays the answer.
	out := s.router.Do(ctx, c.Writer, s.routeRequest(c.Request, req))
	s.forwarded(c.Request.URL.Path, req, s.settle(c.Writer, req, out))
}

// forwarded counts and logs a forwarded request: one line per request,
// what an operator greps for at 3 a.m.
func (s *Server) forwarded(path string, req *request, status int) {
	cl := req.cl
	s.metrics.request(cl.Tier.Name, req.adm.Family, status)
	if !s.log.IsLevelEnabled(logrus.InfoLevel) {
		return
	}
	// The entry is built on these fields as they are: WithFields would
	// copy them into a map of its own (and check each for a func) before
	// Info copies them once more.
	e := &logrus.Entry{Logger: s.log, Data: logrus.Fields{
		"key": cl.Rec.ID, "tier": cl.Tier.Name, "account": req.served, "model": req.model,
		"stream": req.stream, "status": status, "ms": s.d.Clock.Now().Sub(req.start).Milliseconds(),
	}}
	e.Info(path)
}

// refuse answers a request the admission refused. A refusal before the
// body was read drains the body, so the answer reaches a client still
// sending it (golang/go#40747), unless the client left.
func (s *Server) refuse(c *ginContext, req *request, err error) {
	w, r := c.Writer, c.Request
	herr := s.refusal(err)
	var rf *admission.Refusal
	if !errors.As(err, &rf) {
		rf = &admission.Refusal{}
	}
	if req.body != nil {
		s.bufs.put(req.body) // never went upstream: nobody reads it now
		req.body = nil
	}
	tier, h := "", http.Header(nil)
	if rf.Caller != nil {
		tier = rf.Caller.Tier.Name
	} else {
		h = r.Header // names the key presented
	}
	s.metrics.request(tier, rf.Family, herr.status)
	s.logRefusal(rf.Caller, h, req.model, herr)
	if rf.Quota != nil {
		setQuotaHeaders(w.Header(), *rf.Quota)
	}
	if herr.status == statusClientGone {
		return
	}
	if rf.Unread || rf.Kind == admission.BodyRefused && herr.status == http.StatusServiceUnavailable {
		drain(w, r.Body, s.cfg.MaxBodyBytes) // unmetered now: nothing is kept
	}
	herr.write(w)
}

func (s *Server) debugAdmitted(req *request) {
	if q := req.adm.Quota(); q != nil {
		s.log.WithFields(logFields(req.cl)).Debugf("rate limit check passed: %d/%d requests", q.Count, q.Limit)
	}
	s.log.WithFields(logFields(req.cl)).Debugf("using assigned account: %s", req.cl.Account)
}

func (s *Server) quotaRequest(cl *caller, family string, limit int) ratelimit.Request {
	return ratelimit.Request{Subject: cl.Hash, Family: family, Limit: limit, Window: time.Duration(s.d.Tiers.Load().Window)}
}

// setQuotaHeaders sets the key's x-ratelimit-* headers (as Set would:
// canonical names, one value each), their values in one slice.
func setQuotaHeaders(h http.Header, q ratelimit.Result) {
	vs := []string{strconv.Itoa(q.Limit), strconv.Itoa(q.Remaining), q.Reset.UTC().Format(time.RFC3339)}
	h["X-Ratelimit-Limit"], h["X-Ratelimit-Remaining"], h["X-Ratelimit-Reset"] = vs[0:1:1], vs[1:2:2], vs[2:3:3]
}

// refund gives the request's place back: it produced no answer. A
// refund the store did not take is retried in the background by the gate.
func (s *Server) refund(req *request) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := req.adm.Refund(ctx); err != nil {
		s.log.WithFields(logFields(req.cl)).WithError(err).Warn("quota refund failed; retrying in the background")
	}
}

// routeRequest is what routing needs of the request.
func (s *Server) routeRequest(in *http.Request, req *request) *route.Request {
	h := &req.hooks
	h.s, h.req = s, req
	req.routed = route.Request{In: in, Body: req.body, Tier: req.cl.Tier.Name, Overflows: req.cl.Tier.Overflows(), Key: req.cl.Hash,
		AccountConcurrency: req.cl.Tier.AccountConcurrency,
		Account:            req.adm.Account, State: req.adm.State, Rebind: req.adm.Rebind, KeyID: req.cl.Rec.ID,
		Hooks: relay.Hooks{Header: h.header, FirstByte: h.firstByte}}
	return &req.routed
}

// settle answers a refusal and settles the request from routing's one
// outcome: count or refund, and usage.
func (s *Server) settle(w http.ResponseWriter, req *request, out route.Outcome) int {
	req.served = out.Account
	switch {
	case out.Gone:
		req.adm.Count() // the client left before the answer: it counts
		return statusClientGone
	case out.Refused != nil:
		return s.answerSelf(w, req, s.refusal(out.Refused))
	}
	res := out.Result
	if res.Refund {
		s.refund(req)
	} else {
		req.adm.Count()
	}
	if res.UsageOK && res.Status < 400 && s.d.Usage != nil {
		s.recordUsage(req, res.Usage)
	}
	// A key sold from stock starts its validity with its first answer that
	// counts (a refunded one does not).
	if res.Status < 400 && !res.Refund && req.cl.Rec.NotActivated() {
		s.activate(req.cl)
	}
	return res.Status
}

// answerSelf answers with the proxy's own error; no answer was produced,
// so the place is given back.
func (s *Server) answerSelf(w http.ResponseWriter, req *request, herr *httpError) int {
	s.logRefusal(req.cl, nil, req.model, herr)
	if relay.Refund(relay.Facts{Status: herr.status}) {
		s.refund(req)
	}
	if q := req.adm.Quota(); q != nil {
		setQuotaHeaders(w.Header(), *q)
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
	if q := h.req.adm.Quota(); q != nil {
		setQuotaHeaders(hdr, *q)
	}
}

func (h *answerHooks) firstByte() {
	h.s.metrics.ttfb.WithLabelValues(h.req.cl.Tier.Name).Observe(h.s.d.Clock.Now().Sub(h.req.start).Seconds())
}

// recordUsage counts the answer's tokens. The recorder only adds them to
// this replica's totals in memory (App.Run flushes them once a second), so
// it costs the request no Redis command and needs no goroutine.
func (s *Server) recordUsage(req *request, u usage.Usage) {
	tier := req.cl.Tier.Name
	s.metrics.tokens.WithLabelValues(tier, "input").Add(float64(u.InputTokens))
	s.metrics.tokens.WithLabelValues(tier, "output").Add(float64(u.OutputTokens))
	// A long-context request is recorded under its own model name, so every
	// window prices it at the long-context rates.
	model := s.d.Tiers.UsageModel(req.model, u.InputTokens+u.CacheCreationInputTokens+u.CacheReadInputTokens)
	if err := s.d.Usage.RecordModel(context.Background(), req.cl.Hash, req.served, req.adm.Family, model, u); err != nil {
		s.log.WithField("account", req.served).WithError(err).Warn("could not record usage")
	}
	s.addSpend(req.cl, req.adm.Family, model, u)
}
