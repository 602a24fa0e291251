package server

import (
	"errors"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/admission"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/route"
)

// logRefusal writes a refusal (401, 403, 429, 503) at info, sampled: at
// most one line a second per key and reason (logsample), the next line
// telling how many were dropped. So an operator finds a customer's
// "Failed to authenticate" (Claude Code's words for a 401 or 403), and a
// key hammering the proxy over its quota writes a line a second, not a
// megabyte. cl is nil when the key was refused; h then names it by the
// id of what was presented (keys.ID of its hash: never the key itself).
func (s *Server) logRefusal(cl *caller, h http.Header, model string, herr *httpError) {
	switch herr.status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusServiceUnavailable:
	default:
		return
	}
	subject := ""
	if cl != nil {
		subject = cl.Rec.ID
	} else if k := clientKey(h); k != "" {
		subject = keys.ID(keys.Hash(k))
	}
	ok, dropped := s.refusals.Allow(subject, herr.msg)
	if !ok {
		return
	}
	f := logrus.Fields{"status": herr.status}
	if subject != "" {
		f["key"] = subject
	}
	if cl != nil {
		f["tier"] = cl.Tier.Name
	}
	if model != "" {
		f["model"] = model
	}
	if herr.cause != nil {
		f["reason"] = herr.cause.Error()
	}
	if dropped > 0 {
		f["dropped"] = dropped
	}
	s.log.WithFields(f).Info("refused: " + herr.msg)
}

// refusal words a refusal in the contract's shape: the admission's, the
// body reader's or routing's own.
func (s *Server) refusal(err error) *httpError {
	var herr *httpError
	var ar *admission.Refusal
	var rr *route.Refusal
	switch {
	case errors.As(err, &herr):
		return herr // the body reader's
	case errors.As(err, &ar):
		return s.admissionRefusal(ar)
	case errors.As(err, &rr):
		return &httpError{status: rr.Status, typ: rr.Type, msg: rr.Msg, retryAfter: rr.RetryAfter, noRetry: rr.NoRetry, cause: rr.Cause}
	}
	return storeDown(err)
}

// admissionRefusal gives each kind of the admission's refusals its
// status and error type, and counts those the metrics show.
func (s *Server) admissionRefusal(rf *admission.Refusal) *httpError {
	herr := &httpError{msg: rf.Msg, retryAfter: rf.RetryAfter, noRetry: rf.NoRetry, cause: rf.Cause}
	tier := ""
	if rf.Caller != nil {
		tier = rf.Caller.Tier.Name
	}
	switch rf.Kind {
	case admission.Unauthorized:
		herr.status, herr.typ = http.StatusUnauthorized, errAuthentication
	case admission.ModelRefused:
		herr.status, herr.typ = http.StatusForbidden, errPermission
	case admission.TooMany, admission.BudgetSpent:
		herr.status, herr.typ = http.StatusTooManyRequests, errRateLimit
	case admission.QuotaUsed:
		s.metrics.quotaRefusals.WithLabelValues(tier, rf.Family).Inc()
		herr.status, herr.typ = http.StatusTooManyRequests, errRateLimit
	case admission.PoolFull, admission.PoolEmpty:
		reason := "full"
		if rf.Kind == admission.PoolEmpty {
			reason = "empty"
		}
		s.metrics.capacity.WithLabelValues(tier, reason).Inc()
		herr.status, herr.typ = http.StatusServiceUnavailable, errOverloaded
	case admission.ClientGone:
		herr.status = statusClientGone
	default:
		return storeDown(rf.Cause)
	}
	return herr
}
