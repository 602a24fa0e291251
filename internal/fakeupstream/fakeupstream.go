// Package fakeupstream is a faithful in-process fake of the Anthropic API
// (Messages, count_tokens, models) and of the OAuth token endpoint, for
// tests, benchmarks and the `demo` command. There is no internet in CI, and
// the proxy's hard cases (token rotation races, mid-stream errors, dropped
// connections, slow headers) are only testable against an upstream whose
// faults can be scripted. It must never be wired into `serve`.
//
// Responses are deterministic functions of the request (see Reply), so a
// test can compute exactly what usage the proxy should have recorded.
package fakeupstream

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

// ClientID is the OAuth client id Claude Code uses; the token endpoint
// rejects any other unless Options.ClientID says otherwise.
const ClientID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"

// maxBody is the upstream's request size limit (413 request_too_large).
const maxBody = 32 << 20

// Options configure a Server. The zero value is usable.
type Options struct {
	// Clock decides when OAuth access tokens expire; nil means the wall clock.
	Clock clock.Clock
	// TokenTTL is the lifetime of access tokens issued by the token endpoint
	// (default 8h, like the real one).
	TokenTTL time.Duration
	// ChunkDelay is the wall-clock pause between SSE events (default 0).
	ChunkDelay time.Duration
	// Chunks is the number of content_block_delta events per stream (default 5).
	Chunks int
	// FirstDelay is the wall-clock pause before a stream's first event
	// (time to first token; default 0).
	FirstDelay time.Duration
	// NoRecord keeps no copy of the requests (Requests stays empty): the
	// fast mode for benchmarks, which send millions of them.
	NoRecord bool
	// ClientID is the OAuth client id the token endpoint accepts (default ClientID).
	ClientID string
	// Logf, if set, receives one line per request; secrets are never logged.
	Logf func(format string, args ...any)
}

// Request is one request the fake received, recorded for assertions.
type Request struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
	// Credential is the x-api-key value, or else the bearer token.
	Credential string
}

// Server is the fake upstream. All methods are safe for concurrent use.
type Server struct {
	opts  Options
	clock clock.Clock

	// done is closed by Close; every wait in a handler selects on it so a
	// held or slow response never outlives the server.
	done      chan struct{}
	closeOnce sync.Once
	handlers  sync.WaitGroup

	// Set only by Listen/Start.
	url      string
	httpSrv  *http.Server
	serveErr chan error

	mu          sync.Mutex
	closed      bool
	apiKeys     map[string]bool
	access      map[string]*accessToken
	refresh     map[string]int       // live refresh token → lineage
	lineageOf   map[string]int       // every refresh token ever seen → lineage
	lineages    []lineage            // index = lineage id
	codes       map[string]*authCode // authorization codes (authorize.go)
	faults      []*queuedFault
	tokenFaults []*queuedTokenFault
	requests    []Request
	messages    int
	cancelled   int
	inFlight    int
	peak        int // the most requests in flight at once since Reset
	tokenCalls  int
	utils       map[string]utilization // per credential, see SetUtilization
	// changed is closed and replaced whenever inFlight drops, so WaitIdle
	// can block without polling.
	changed chan struct{}
}

// New returns a Server that is not listening; mount Handler() yourself
// (e.g. with httptest.NewServer) or use Start.
func New(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 8 * time.Hour
	}
	if opts.Chunks <= 0 {
		opts.Chunks = 5
	}
	if opts.ClientID == "" {
		opts.ClientID = ClientID
	}
	return &Server{
		opts:      opts,
		clock:     opts.Clock,
		done:      make(chan struct{}),
		apiKeys:   map[string]bool{},
		access:    map[string]*accessToken{},
		refresh:   map[string]int{},
		lineageOf: map[string]int{},
		changed:   make(chan struct{}),
	}
}

// Listen starts a Server on addr (e.g. "127.0.0.1:0").
func Listen(addr string, opts Options) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakeupstream: listen %s: %w", addr, err)
	}
	s := New(opts)
	s.url = "http://" + l.Addr().String()
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.httpSrv.Serve(l) }()
	return s, nil
}

// Start is like httptest.NewServer: it listens on 127.0.0.1:0 and panics if
// it cannot, which only happens on a broken machine.
func Start(opts Options) *Server {
	s, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		panic(err)
	}
	return s
}

// URL is the base URL of a started server ("" for one made with New).
func (s *Server) URL() string { return s.url }

// TokenURL is the OAuth refresh endpoint of a started server.
func (s *Server) TokenURL() string { return s.url + tokenPath }

// Handler serves the fake API.
func (s *Server) Handler() http.Handler { return s }

// Close unblocks every held or delayed response, stops the listener (if
// started) and waits for all handlers to return. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
			<-s.serveErr
		}
		s.handlers.Wait()
	})
}

// ServeHTTP routes a request. It reads the whole body before answering
// (the real API does, and it avoids golang/go#40747 on the client side).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "fake upstream closed", http.StatusServiceUnavailable)
		return
	}
	defer s.leave()

	w.Header().Set("request-id", newID("req_"))
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if s.opts.Logf != nil {
			s.opts.Logf("fakeupstream: %s %s -> %d", r.Method, r.URL.Path, sw.status)
		}
	}()

	body, err := io.ReadAll(http.MaxBytesReader(sw, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(sw, http.StatusRequestEntityTooLarge, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
		return
	case err != nil:
		writeError(sw, http.StatusBadRequest, "invalid_request_error", "could not read request body")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.record(r, body)

	switch p := r.URL.Path; {
	case p == "/v1/messages":
		s.onlyMethod(sw, r, http.MethodPost, func() { s.handleMessages(sw, r, body) })
	case p == "/v1/messages/count_tokens":
		s.onlyMethod(sw, r, http.MethodPost, func() { s.handleCountTokens(sw, r, body) })
	case p == "/v1/models" || strings.HasPrefix(p, "/v1/models/"):
		s.onlyMethod(sw, r, http.MethodGet, func() { s.handleModels(sw, r) })
	case p == tokenPath:
		s.handleToken(sw, r, body)
	case p == authorizePath:
		s.onlyMethod(sw, r, http.MethodGet, func() { s.handleAuthorize(sw, r) })
	default:
		writeError(sw, http.StatusNotFound, "not_found_error", "Not Found")
	}
}

func (s *Server) onlyMethod(w http.ResponseWriter, r *http.Request, method string, next func()) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "Method Not Allowed")
		return
	}
	next()
}

// enter registers a handler unless the server is closing; Close waits for
// every registered handler, and no handler can register after it started.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.handlers.Add(1)
	s.inFlight++
	if s.inFlight > s.peak {
		s.peak = s.inFlight
	}
	return true
}

func (s *Server) leave() {
	s.mu.Lock()
	s.inFlight--
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.handlers.Done()
}

func (s *Server) record(r *http.Request, body []byte) {
	if s.opts.NoRecord {
		return
	}
	cred, _ := credentialOf(r.Header)
	req := Request{
		Method:     r.Method,
		Path:       r.URL.Path,
		RawQuery:   r.URL.RawQuery,
		Header:     r.Header.Clone(),
		Body:       body,
		Credential: cred,
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
}

// Requests returns a copy of every request received since the last Reset.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// MessageCount is the number of POST /v1/messages answered with 200 (a
// message, or a stream that was started).
func (s *Server) MessageCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages
}

// Cancelled is the number of requests whose client went away (context
// cancelled or connection closed) before the response was complete.
func (s *Server) Cancelled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelled
}

// InFlight is the number of requests currently being handled.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// PeakInFlight is the most requests handled at once since the last Reset.
func (s *Server) PeakInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// TokenCalls is the number of requests to the OAuth token endpoint.
func (s *Server) TokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls
}

// WaitIdle blocks until no request is in flight or ctx is done. Use it
// after a client cancels to be sure the fake has noticed (Cancelled).
func (s *Server) WaitIdle(ctx context.Context) error {
	for {
		s.mu.Lock()
		n, ch := s.inFlight, s.changed
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("fakeupstream: %d requests still in flight: %w", n, ctx.Err())
		}
	}
}

// Reset clears the recordings (requests and counters). Credentials and
// queued faults stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.messages = 0
	s.cancelled = 0
	s.tokenCalls = 0
	s.peak = s.inFlight
}

func (s *Server) noteCancelled() {
	s.mu.Lock()
	s.cancelled++
	s.mu.Unlock()
}

// errClientGone and errServerClosed say why a wait inside a handler ended early.
var (
	errClientGone   = errors.New("client went away")
	errServerClosed = errors.New("fake upstream closed")
)

// sleep waits d of wall time, honouring the client's cancellation and Close.
func (s *Server) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return s.alive(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return s.alive(ctx)
	case <-ctx.Done():
		return s.alive(ctx)
	case <-s.done:
		return errServerClosed
	}
}

// hold waits until ch is closed, the client goes away or the server closes.
func (s *Server) hold(ctx context.Context, ch <-chan struct{}) error {
	if ch == nil {
		return s.alive(ctx)
	}
	select {
	case <-ch:
		return s.alive(ctx)
	case <-ctx.Done():
		return s.alive(ctx)
	case <-s.done:
		return errServerClosed
	}
}

// alive reports whether the response should go on. Close wins over the
// client's cancellation because closing the server cancels requests too.
func (s *Server) alive(ctx context.Context) error {
	select {
	case <-s.done:
		return errServerClosed
	default:
	}
	if ctx.Err() != nil {
		return errClientGone
	}
	return nil
}

// newID returns prefix plus 24 random base62 characters, like Anthropic's
// req_/msg_ ids.
func newID(prefix string) string {
	return prefix + randomText(24)
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on a broken system)
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)]
	}
	return string(b)
}

// statusWriter remembers the status for the log line. Unwrap keeps
// http.ResponseController (Flush, Hijack) working through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
