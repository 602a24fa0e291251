// Package server is the HTTP surface: the customer API (the proxy handler:
// admit, route, settle), the admin API and dashboard, /health and /metrics.
// It owns no Redis state and knows no Redis driver; package app assembles
// the stores and runs the lifecycle, and ForApp builds a Server on an
// assembled App.
package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/admission"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/logsample"
	"github.com/claude-route/claude-route/relay"
	"github.com/claude-route/claude-route/route"
	"github.com/claude-route/claude-route/tiers"
)

// Config is the server's own settings.
type Config struct {
	// UpstreamURL is the default base URL for accounts without their own.
	UpstreamURL string
	// MaxBodyBytes bounds a request body (default 32 MiB, as upstream).
	MaxBodyBytes int64
	// AdminToken guards /admin/api; empty refuses the admin API.
	AdminToken string
	// HeaderTimeout bounds the wait for the upstream's response headers.
	// Non-streamed answers send headers only when complete, so it is long.
	HeaderTimeout time.Duration
	// BodyReadTimeout bounds how long a client may take to send its request
	// body (BODY_READ_TIMEOUT); a slower one gets 408. 0 means no bound.
	BodyReadTimeout time.Duration
	// BodyMinRate is the least average rate, in bytes a second, at which a
	// body must arrive once BodyRateGrace has passed since the proxy began
	// reading it (BODY_MIN_RATE, BODY_RATE_GRACE); a slower one gets 408.
	// 0 means the defaults (64 KiB/s after 5 s); a negative rate, no bound.
	BodyMinRate   int64
	BodyRateGrace time.Duration
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers (default 10 s).
	ReadHeaderTimeout time.Duration
	// SeparateAdmin serves the admin API, the dashboard and /metrics only
	// on the admin listener (ServeAdmin, ADMIN_LISTEN_ADDR); the public
	// listener answers 404 there.
	SeparateAdmin bool
	// MetricsPublic serves /metrics without the admin token
	// (METRICS_PUBLIC=true): for a scraper on a private network that
	// cannot send a bearer token. Otherwise /metrics on the public
	// listener needs the token, as the admin API does: it names accounts
	// and shows their utilization.
	MetricsPublic bool
	// AccountDir is ACCOUNT_DIR, where the admin API's account verbs write.
	AccountDir string
	// StoreBudget bounds each round of a request's store work before it
	// goes upstream (0: storeBudget, 900 ms); past it the answer is 503.
	StoreBudget time.Duration
	// StreamIdleTimeout ends an answer when no byte came from the upstream
	// for that long (STREAM_IDLE_TIMEOUT, default 5 m).
	StreamIdleTimeout time.Duration
	// MaxInflightBodyBytes bounds the request bytes held across the
	// process (MAX_INFLIGHT_BODY_BYTES, default 256 MiB).
	MaxInflightBodyBytes int64
	// InflightWait is how long a request waits for room in that budget
	// before 503 overloaded_error (default 2 s).
	InflightWait time.Duration
	// Transport overrides the upstream transport (tests, benchmarks).
	Transport http.RoundTripper
	// CacheTTL is how long a key's record and binding, and an account's
	// record and pool state, are served from memory (CACHE_TTL): 0 means
	// the default 1 s, negative no cache. See package cache.
	CacheTTL time.Duration
}

// Deps are the collaborators; all but Refresher, Usage and Syncer are required.
type Deps struct {
	Store     Pinger
	Tiers     *tiers.Live // the table in service; a sync may replace it (TIERS_FILE)
	Keys      KeyStore
	Pool      Pool
	Accounts  AccountStore
	Limiter   Limiter
	Refresher Refresher
	Usage     UsageRecorder
	// Spend keeps keys' spend against their budgets; nil: budgets off.
	Spend  SpendBook
	Syncer Syncer
	// Util takes each upstream answer's rate-limit headers (optional).
	Util UtilObserver
	// Admission are the admission's stores (keys, bindings, quotas,
	// concurrency leases, spend, the shared pipeline).
	Admission admission.Stores
	// Routing are the stores the router reads and writes.
	Routing RouteStores
	Alerts  AlertSink // nil: no alerts
	// Login runs `account login`'s sign-ins; nil: not configured.
	Login LoginFlow
	Clock clock.Clock
	Log   *logrus.Logger
}

// Server is the HTTP service.
type Server struct {
	cfg     Config
	d       Deps
	log     *logrus.Logger
	router  *route.Router
	metrics *metrics
	engine  *gin.Engine
	// admin serves the admin surface when cfg.SeparateAdmin; nil otherwise.
	admin *gin.Engine
	// handlers counts requests being served, and bg work that outlives a
	// response (usage and ledger records). Shutdown waits for handlers
	// first, so no handler adds to bg once bg is being waited for.
	handlers sync.WaitGroup
	bg       sync.WaitGroup
	// bufs recycles request-body buffers (body.go).
	bufs bodyPool
	// inflight is the budget of request-body bytes held at once.
	inflight *admission.Budget
	// gate admits requests (package admission).
	gate *admission.Gate
	// refusals samples refusal log lines: one a second per key and reason.
	refusals *logsample.Sampler
}

// New builds the server.
func New(cfg Config, d Deps) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 32 << 20
	}
	if cfg.MaxInflightBodyBytes == 0 {
		cfg.MaxInflightBodyBytes = 256 << 20
	}
	if cfg.BodyMinRate == 0 {
		cfg.BodyMinRate = 64 << 10
	}
	if cfg.BodyRateGrace <= 0 {
		cfg.BodyRateGrace = 5 * time.Second
	}
	if cfg.InflightWait == 0 {
		cfg.InflightWait = 2 * time.Second
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = 10 * time.Minute
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Second
	}
	if cfg.StoreBudget <= 0 {
		cfg.StoreBudget = storeBudget
	}
	up := relay.New(relay.Config{DefaultURL: cfg.UpstreamURL, HeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout: cfg.StreamIdleTimeout, Clock: d.Clock, Transport: cfg.Transport})
	s := &Server{cfg: cfg, d: d, log: d.Log,
		inflight: admission.NewBudget(cfg.MaxInflightBodyBytes),
		refusals: logsample.New(d.Clock, time.Second)}
	s.metrics = newMetrics(s)
	s.gate = admission.NewGate(admission.GateConfig{Stores: d.Admission, Tiers: d.Tiers, Bodies: s.inflight, Clock: d.Clock, Log: d.Log,
		CacheTTL: cfg.CacheTTL, StoreBudget: cfg.StoreBudget})
	s.router = route.New(route.Deps{Relay: up, Redis: d.Routing.Pipelines, Pool: d.Routing.Pool, Accounts: d.Routing.Accounts,
		Refresher: d.Refresher, Util: d.Util, Metrics: routeMetrics{s.metrics}, Forget: s.gate.Forget,
		Clock: d.Clock, Log: d.Log})
	gin.SetMode(gin.ReleaseMode)
	newEngine := func() *gin.Engine {
		e := gin.New()
		e.Use(s.guard)
		e.ContextWithFallback = true
		return e
	}
	s.engine = newEngine()
	s.routes(s.engine)
	if cfg.SeparateAdmin {
		s.admin = newEngine()
		s.admin.GET("/health", s.health)
		s.adminSurface(s.admin)
		s.notFound(s.admin)
	}
	return s
}

// guard is the one middleware every request passes. It counts the
// handler for Serve's shutdown, turns a panic into Anthropic's error
// shape and gives the body its read deadline. One frame, not three: a
// stream keeps every frame above it for its whole life (DESIGN.md, stacks).
func (s *Server) guard(c *gin.Context) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	defer func() {
		if v := recover(); v != nil {
			s.panicked(c, v)
		}
	}()
	s.wrapBody(c)
	c.Next()
}

// panicked answers a handler's panic with a log line that names the route
// but never the request's headers (they carry keys).
func (s *Server) panicked(c *gin.Context, v any) {
	if v == http.ErrAbortHandler {
		panic(v) // the client left; net/http handles it quietly
	}
	s.log.WithFields(logrus.Fields{"method": c.Request.Method, "path": c.Request.URL.Path}).Errorf("panic serving request: %v", v)
	if !c.Writer.Written() {
		writeError(c.Writer, http.StatusInternalServerError, errAPI, "Internal server error")
	}
	c.Abort()
}

// Handler is the whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.engine }

// AdminHandler is the admin surface (admin API, dashboard, /metrics) when
// it has its own listener; nil otherwise.
func (s *Server) AdminHandler() http.Handler {
	if s.admin == nil {
		return nil
	}
	return s.admin
}

func (s *Server) routes(e *gin.Engine) {
	e.GET("/health", s.health)
	if !s.cfg.SeparateAdmin {
		s.adminSurface(e)
	}
	v1 := e.Group("/v1")
	v1.POST("/messages", s.messages)
	v1.POST("/messages/count_tokens", s.countTokensHandler)
	v1.GET("/models", s.modelList)
	v1.GET("/models/:id", s.modelGet)
	v1.POST("/chat/completions", s.chatCompletions)
	v1.POST("/responses", s.responses)
	v1.GET("/usage", s.customerUsage)
	s.usagePageRoutes(e)
	s.notFound(e)
}

// adminSurface is what ADMIN_LISTEN_ADDR moves off the public listener.
// /metrics is open on the admin listener (reachable only where the
// operator put it) and with MetricsPublic; elsewhere it takes the token.
func (s *Server) adminSurface(e *gin.Engine) {
	if s.cfg.SeparateAdmin || s.cfg.MetricsPublic {
		e.GET("/metrics", gin.WrapH(s.metrics.handler()))
	} else {
		e.GET("/metrics", s.adminAuth, gin.WrapH(s.metrics.handler()))
	}
	s.adminRoutes(e)
}

func (s *Server) health(c *gin.Context) {
	err := s.d.Store.Ping(c.Request.Context())
	if err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "store": "down"})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "store": "up"})
}

// Serve runs the HTTP server on ln until ctx ends, then stops accepting,
// lets in-flight requests (streams included) finish within grace, waits for
// background work and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	return s.serve(ctx, ln, grace, s.engine)
}

// ServeAdmin is Serve for the admin listener (Config.SeparateAdmin).
func (s *Server) ServeAdmin(ctx context.Context, ln net.Listener, grace time.Duration) error {
	if s.admin == nil {
		return errors.New("no separate admin listener configured")
	}
	return s.serve(ctx, ln, grace, s.admin)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, grace time.Duration, h http.Handler) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    64 << 10,
		// Streams stay open for minutes: no write timeout; idle conns are reaped.
		IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Infof("shutting down: draining in-flight requests for up to %s", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("grace period over: cutting the remaining streams, then closing their connections")
		s.cut()
		_ = hs.Close()
	}
	s.handlers.Wait() // Close does not wait for handlers; their contexts are cancelled
	s.waitBackground()
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return nil
}

// cut ends the upstream calls still open when the grace period is over:
// each stream gets an SSE error event that says the server is shutting
// down, and its quota place back. The handlers get a moment (cutWait) to
// write that event before the connections are closed under them.
func (s *Server) cut() {
	s.router.Cut()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	t := time.NewTimer(cutWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// cutWait bounds how long a shutdown waits for cut streams to write their
// last event.
const cutWait = 2 * time.Second

// waitBackground waits for the work started off the response path (usage
// and ledger records, account health writes, spend). Handlers first: a
// handler starts some of that work (addSpend's bg.Add) after its client
// has read the whole answer, so a caller that saw the answer could
// otherwise wait before the work began (a race on bg under -race).
func (s *Server) waitBackground() {
	s.handlers.Wait()
	s.bg.Wait()
	s.router.Wait()
	s.gate.Wait()
}
