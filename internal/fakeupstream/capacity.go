package fakeupstream

import (
	"net/http"
	"strconv"
	"time"
)

// MsgTokenRevoked is how the API answers (403) a revoked OAuth token.
const MsgTokenRevoked = "OAuth token has been revoked. Please obtain a new token."

// utilization is what the fake reports for one credential.
type utilization struct{ fiveHour, sevenDay float64 }

// SetUtilization makes every answer to credential report these unified
// 5-hour and 7-day utilizations (fractions 0–1) instead of the defaults.
func (s *Server) SetUtilization(credential string, fiveHour, sevenDay float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.utils == nil {
		s.utils = map[string]utilization{}
	}
	s.utils[credential] = utilization{fiveHour, sevenDay}
}

// utilizationHeaders applies SetUtilization. An API key reports its share
// through requests-remaining: remaining = limit × (1 − 5-hour utilization).
func (s *Server) utilizationHeaders(h http.Header, auth authInfo) {
	s.mu.Lock()
	u, ok := s.utils[auth.credential]
	s.mu.Unlock()
	if !ok {
		return
	}
	if auth.oauth {
		h.Set("anthropic-ratelimit-unified-5h-utilization", strconv.FormatFloat(u.fiveHour, 'f', -1, 64))
		h.Set("anthropic-ratelimit-unified-7d-utilization", strconv.FormatFloat(u.sevenDay, 'f', -1, 64))
		return
	}
	limit, _ := strconv.Atoi(h.Get("anthropic-ratelimit-requests-limit"))
	h.Set("anthropic-ratelimit-requests-remaining", strconv.Itoa(int(float64(limit)*(1-u.fiveHour))))
}

// RejectLimit queues, for the next times requests with credential, the
// 429 the API gives when the subscription's own limit is reached: unified
// status rejected, with a reset in the future (Unix seconds).
func (s *Server) RejectLimit(credential string, reset time.Time, times int) {
	r := strconv.FormatInt(reset.Unix(), 10)
	s.InjectFault(credential, Fault{Status: http.StatusTooManyRequests, Times: times,
		Message: "This request would exceed your account's rate limit. Please try again later.",
		Headers: map[string]string{
			"anthropic-ratelimit-unified-status":         "rejected",
			"anthropic-ratelimit-unified-reset":          r,
			"anthropic-ratelimit-unified-5h-status":      "rejected",
			"anthropic-ratelimit-unified-5h-reset":       r,
			"anthropic-ratelimit-unified-5h-utilization": "1.0",
			"retry-after": strconv.FormatInt(int64(time.Until(reset).Seconds())+1, 10),
		}})
}

// RevokeWith403 queues, for the next request with credential, the 403 the
// API gives for a revoked OAuth token.
func (s *Server) RevokeWith403(credential string) {
	s.InjectFault(credential, Fault{Status: http.StatusForbidden, ErrorType: "permission_error", Message: MsgTokenRevoked})
}

// Overload queues a burst: the next n requests with credential get 529.
func (s *Server) Overload(credential string, n int) {
	s.InjectFault(credential, Fault{Status: 529, Times: n})
}

// RemoveAPIKey makes an API key refused (401) until AddAPIKey again.
func (s *Server) RemoveAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.apiKeys, key)
}
