package fakeupstream

import "time"

// Fault scripts a misbehaviour for the next matching request(s).
type Fault struct {
	// Path the fault applies to: "" means POST /v1/messages; otherwise an
	// exact path such as "/v1/messages/count_tokens" or "/v1/models".
	Path string
	// Status, if set, answers with Anthropic's error JSON for that status
	// (e.g. 401, 429, 500, 529) instead of serving the request.
	Status int
	// ErrorType and Message override the defaults for Status.
	ErrorType, Message string
	// Headers are added to the answer (error or success), e.g.
	// anthropic-ratelimit-unified-status: rejected, retry-after.
	Headers map[string]string
	// HeaderDelay delays the response headers (the client may cancel meanwhile).
	HeaderDelay time.Duration
	// DropAfterEvents closes the connection abruptly after N SSE events, so
	// the client sees an unexpected EOF. On a non-stream request any N > 0
	// closes the connection without an answer.
	DropAfterEvents int
	// ErrorEventAfter sends `event: error` (overloaded_error) after N SSE
	// events and ends the stream cleanly.
	ErrorEventAfter int
	// Hold, on a stream, pauses after the first event (message_start) until
	// closed; on a non-stream request (count_tokens too) it pauses before
	// the answer.
	Hold chan struct{}
	// Times is how many requests get the fault (default 1).
	Times int
}

type queuedFault struct {
	credential string
	fault      Fault
	left       int
}

// InjectFault queues f for the next request(s) made with credential (an API
// key or access token; "" matches any). Faults apply after authentication,
// in the order they were injected.
func (s *Server) InjectFault(credential string, f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &queuedFault{credential: credential, fault: f, left: f.Times})
}

// ClearFaults drops every queued fault, for messages and the token endpoint.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
	s.tokenFaults = nil
}

// takeFault consumes one use of the first fault matching path and credential.
func (s *Server) takeFault(path, credential string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.faults {
		p := q.fault.Path
		if p == "" {
			p = "/v1/messages"
		}
		if p != path || (q.credential != "" && q.credential != credential) {
			continue
		}
		q.left--
		if q.left == 0 {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		return q.fault, true
	}
	return Fault{}, false
}

// TokenFault scripts a misbehaviour of the OAuth token endpoint.
type TokenFault struct {
	// Status, if set, answers with Body (default: a JSON error for the status).
	Status int
	Body   string
	// RetryAfter, if > 0, is sent as the Retry-After header (seconds).
	RetryAfter int
	// Delay holds the answer (honouring the client's cancellation); with
	// Status 0 the request is then served normally.
	Delay time.Duration
	// Times is how many calls get the fault (default 1).
	Times int
}

type queuedTokenFault struct {
	fault TokenFault
	left  int
}

// InjectTokenFault queues f for the next call(s) to the token endpoint.
func (s *Server) InjectTokenFault(f TokenFault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFaults = append(s.tokenFaults, &queuedTokenFault{fault: f, left: f.Times})
}

func (s *Server) takeTokenFault() (TokenFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokenFaults) == 0 {
		return TokenFault{}, false
	}
	q := s.tokenFaults[0]
	q.left--
	if q.left == 0 {
		s.tokenFaults = s.tokenFaults[1:]
	}
	return q.fault, true
}
