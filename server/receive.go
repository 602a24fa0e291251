package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/claude-route/claude-route/admission"
)

// ReadBody reads the request's body for the admission, once the key is
// known and holds its concurrency place: the body takes room in the
// process's body budget as its bytes arrive, within the key's fair share
// (clientBody), and its model is read exactly as the upstream will read
// it. An alias is resolved here: tier rules, quotas and logs see the real
// model.
func (req *request) ReadBody(ctx context.Context, cl *admission.Caller, hold *admission.Hold) (string, error) {
	s, w, r := req.s, req.c.Writer, req.c.Request
	s.meterBody(ctx, r, hold)
	if herr := s.readBody(w, r, cl.Tier.Name, req); herr != nil {
		return "", herr
	}
	req.start = s.d.Clock.Now()
	s.resolveAlias(req)
	return req.model, nil
}

// readBody reads the whole body (we need the model, and reading it before
// answering avoids golang/go#40747) within the size limit, presized from
// Content-Length, and reads model and stream from it exactly as the
// upstream will (admission.ScanBody).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, tier string, req *request) *httpError {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
		return &httpError{status: http.StatusBadRequest, typ: errInvalidRequest,
			msg: "Content-Type must be application/json, got " + strconv.Quote(ct)}
	}
	body, err := s.bufs.readSized(w, r.Body, r.ContentLength, s.cfg.MaxBodyBytes)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return &httpError{status: http.StatusRequestEntityTooLarge, typ: errRequestTooLarge,
				msg: fmt.Sprintf("Request exceeds the maximum size of %d bytes", s.cfg.MaxBodyBytes)}
		}
		if errors.Is(err, errNoRoom) {
			s.metrics.capacity.WithLabelValues(tier, "inflight_bytes").Inc()
			return &httpError{status: http.StatusServiceUnavailable, typ: errOverloaded, cause: err,
				msg: "The proxy is handling too many request bytes right now; please retry"}
		}
		if errors.Is(err, errBodySlow) {
			return &httpError{status: http.StatusRequestTimeout, typ: errTimeout,
				msg: fmt.Sprintf("The request body arrived slower than %d KiB/s", s.cfg.BodyMinRate>>10)}
		}
		if bodyTimedOut(err) {
			return &httpError{status: http.StatusRequestTimeout, typ: errTimeout,
				msg: fmt.Sprintf("The request body was not received within %g seconds", s.cfg.BodyReadTimeout.Seconds())}
		}
		if r.Context().Err() != nil {
			return &httpError{status: statusClientGone, cause: err}
		}
		return &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: "could not read the request body"}
	}
	bodyRead(r)
	f, err := admission.ScanBody(body)
	if err != nil {
		s.bufs.put(body)
		var be *admission.BodyError
		if errors.As(err, &be) {
			return &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: be.Msg}
		}
		return &httpError{status: http.StatusBadRequest, typ: errInvalidRequest, msg: "could not read the request body", cause: err}
	}
	req.body, req.model, req.modelAt, req.stream = body, f.Model, f.ModelAt, f.Stream
	return nil
}

// statusClientGone is logged for a request whose client left before
// anything was answered (nginx's 499).
const statusClientGone = 499
