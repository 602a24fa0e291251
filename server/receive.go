package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/claude-route/claude-route/admission"
	"github.com/claude-route/claude-route/concurrency"
)

// receive does what comes before the admission: authentication, the key's
// concurrency place, the body and the tier's model rules. It answers a
// refusal itself and returns nil; otherwise the request, with tk holding
// what it took. It returns before the store's and the upstream's round
// trips, so its large frame is not on the stack under them.
func (s *Server) receive(c *ginContext, counted bool, tk *admission.Ticket) *request {
	w, r := c.Writer, c.Request
	ctx := r.Context()
	// Authentication first: a request without a valid key learns nothing
	// else, and the body of a stranger is never read. Each trip to the
	// store gets a fixed budget (storeBudget) before the upstream call: a
	// hung store answers 503 within a second instead of holding the client.
	// count_tokens (not counted) never enters the key's concurrency queue:
	// it has its own per-key bound (counttokens.go).
	cl, entry, herr := s.authenticateEnter(ctx, r.Header, counted)
	if herr == nil && !counted && !s.countTokens.allow(cl.hash) {
		herr = &httpError{status: http.StatusTooManyRequests, typ: errRateLimit, retryAfter: time.Second,
			msg: fmt.Sprintf("Too many count_tokens requests for this key (more than %d a second)", countTokensRate)}
	}
	if herr != nil {
		s.metrics.request("", "", herr.status)
		s.logRefusal(cl, r.Header, "", herr)
		herr.write(w)
		return nil
	}
	// The key's concurrency place before a byte of the body is read: a
	// flood of large bodies on one key waits in its queue instead of in
	// memory. The body then takes room in the process's body budget as its
	// bytes arrive, within the key's fair share (clientBody).
	// Refused before the body was read: drain it, so the answer reaches
	// a client still sending (golang/go#40747), unless the client left.
	refuseUnread := func(herr *httpError) {
		s.metrics.request(cl.tier.Name, "", herr.status)
		s.logRefusal(cl, nil, "", herr)
		if herr.status != statusClientGone {
			drain(w, r.Body, s.cfg.MaxBodyBytes)
			herr.write(w)
		}
	}
	lease, herr := s.takeLease(ctx, cl, entry)
	if herr != nil {
		refuseUnread(herr)
		return nil
	}
	tk.HoldLease(lease)
	if max, ok := s.bodyMax(r); ok {
		hold := s.inflight.NewHold(cl.hash, max)
		tk.HoldBody(hold)
		s.meterBody(ctx, r, hold)
	}
	req, herr := s.readBody(w, r, cl.tier.Name)
	if herr != nil {
		s.metrics.request(cl.tier.Name, "", herr.status)
		s.logRefusal(cl, nil, "", herr)
		if herr.status == http.StatusServiceUnavailable {
			drain(w, r.Body, s.cfg.MaxBodyBytes) // unmetered now: nothing is kept
		}
		if herr.status != statusClientGone {
			herr.write(w)
		}
		return nil
	}
	req.ticket = tk
	req.counted, req.start = counted, s.d.Clock.Now()
	req.cl = cl
	s.resolveAlias(req)
	req.family = s.d.Tiers.FamilyOf(req.model)
	if !cl.tier.Allows(req.family) {
		s.bufs.put(req.body) // never went upstream: nobody reads it now
		s.metrics.request(cl.tier.Name, req.family, http.StatusForbidden)
		herr := &httpError{status: http.StatusForbidden, typ: errPermission, msg: modelRefusal(cl.tier)}
		s.logRefusal(cl, nil, req.model, herr)
		herr.write(w)
		return nil
	}
	return req
}

// readBody reads the whole body (we need the model, and reading it before
// answering avoids golang/go#40747) within the size limit, presized from
// Content-Length, and reads model and stream from it exactly as the
// upstream will (admission.ScanBody).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, tier string) (*request, *httpError) {
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
		if errors.Is(err, errNoRoom) {
			s.metrics.capacity.WithLabelValues(tier, "inflight_bytes").Inc()
			return nil, &httpError{status: http.StatusServiceUnavailable, typ: errOverloaded, cause: err,
				msg: "The proxy is handling too many request bytes right now; please retry"}
		}
		if errors.Is(err, errBodySlow) {
			return nil, &httpError{status: http.StatusRequestTimeout, typ: errTimeout,
				msg: fmt.Sprintf("The request body arrived slower than %d KiB/s", s.cfg.BodyMinRate>>10)}
		}
		if bodyTimedOut(err) {
			return nil, &httpError{status: http.StatusRequestTimeout, typ: errTimeout,
				msg: fmt.Sprintf("The request body was not received within %g seconds", s.cfg.BodyReadTimeout.Seconds())}
		}
		if r.Context().Err() != nil {
			return nil, &httpError{status: statusClientGone, cause: err}
		}
		return nil, &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: "could not read the request body"}
	}
	bodyRead(r)
	f, err := admission.ScanBody(body)
	if err != nil {
		s.bufs.put(body)
		var be *admission.BodyError
		if errors.As(err, &be) {
			return nil, &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: be.Msg}
		}
		return nil, &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: "could not read the request body", cause: err}
	}
	return &request{body: body, model: f.Model, modelAt: f.ModelAt, stream: f.Stream}, nil
}

// statusClientGone is logged for a request whose client left before
// anything was answered (nginx's 499).
const statusClientGone = 499

// takeLease finishes the key's concurrency entry: at once when the key is
// under its tier's concurrency, else after a first-come-first-served wait
// of up to QUEUE_WAIT. A streamed request that waits has sent nothing.
func (s *Server) takeLease(ctx context.Context, cl *caller, entry *concurrency.Entry) (*concurrency.Lease, *httpError) {
	if entry == nil {
		return nil, nil
	}
	n := cl.tier.MaxConcurrent()
	if n == 0 {
		n = math.MaxInt32 // no limit: the lease still tracks the request
	}
	lease, err := entry.Admit(ctx, n)
	switch {
	case err == nil:
		return lease, nil
	case errors.Is(err, concurrency.ErrQueueFull), errors.Is(err, concurrency.ErrWaitTimeout):
		return nil, &httpError{status: http.StatusTooManyRequests, typ: errRateLimit, retryAfter: time.Second, cause: err,
			msg: fmt.Sprintf("Too many concurrent requests for this key (%d)", n)}
	case ctx.Err() != nil:
		return nil, &httpError{status: statusClientGone, cause: err}
	default:
		return nil, storeDown(err)
	}
}
