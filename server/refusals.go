package server

import (
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/keys"
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
		subject = cl.rec.ID
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
		f["tier"] = cl.tier.Name
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
