// Package app assembles claude-route and runs its lifecycle: it opens the
// store, builds every package on it, and runs the background work
// (refresher, sync, watchdogs, flushers) around an HTTP surface it is given
// (package server). It holds no request logic; it does not import server,
// so server's tests can assemble a whole App.
package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/login"
	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/refresh"
	"github.com/claude-route/claude-route/spend"
	"github.com/claude-route/claude-route/store"
	"github.com/claude-route/claude-route/syncer"
	"github.com/claude-route/claude-route/tiers"
	"github.com/claude-route/claude-route/usage"
)

// Config is everything a running claude-route needs beyond its HTTP
// surface's own settings (server.Config).
type Config struct {
	// UpstreamURL is the default base URL of accounts without their own:
	// the HTTP surface's upstream calls and the recovery probes use it.
	UpstreamURL   string
	RedisURL      string
	AccountDir    string
	ProductDir    string
	Tiers         *tiers.Table
	OAuthTokenURL string
	OAuthClientID string
	// Login is the OAuth sign-in of `account login`; its TokenURL,
	// ClientID, HTTP client and clock come from the fields here.
	Login        login.Config
	RefreshLead  time.Duration
	SyncInterval time.Duration
	// KeyRetention: revoked or expired keys older than this are archived
	// by sync (KEY_RETENTION); 0 keeps them.
	KeyRetention  time.Duration
	ShutdownGrace time.Duration
	// WatchInterval is how often the store is checked for having lost its
	// data (default 1 s).
	WatchInterval time.Duration
	// UsageFlushEvery is how often usage totals go to the store (default
	// usage.FlushEvery, 1 s; tests lengthen it to see what shutdown flushes).
	UsageFlushEvery time.Duration
	// PprofAddr (PPROF_ADDR) serves runtime profiles on a listener of its
	// own; empty (the default) serves none.
	PprofAddr string
	Clock     clock.Clock
	Log       *logrus.Logger
	// TokenClient overrides the HTTP client of the token endpoint (tests).
	TokenClient *http.Client
	// Capacity: passive health, concurrency queue (see capacity.go).
	Capacity CapacityConfig
	// Alerts: ALERT_WEBHOOK_URL and the pool watcher (see alerting.go).
	Alerts AlertConfig
	// TiersFile is TIERS_FILE, which Tiers came from: every sync (and
	// SIGHUP) re-reads it. Empty: the built-in table, never reloaded.
	TiersFile string
	// StoreFile is STORE_FILE: with the embedded store, where its data is
	// kept between runs (storefile.go). Empty: nothing is kept.
	StoreFile string
	// Store bounds each store call (zero fields: store.Open's defaults),
	// and StoreBudget each batch of the request path's store work (0:
	// StoreBudget). Production keeps both; tests on a store the machine's
	// load slows down lengthen them.
	Store       store.Options
	StoreBudget time.Duration
}

// App is an assembled service: the store and every package on it. Its HTTP
// surface is built from it (server.ForApp) and handed to Run.
type App struct {
	Cfg       Config
	Store     *store.Store
	Keys      *keys.Store
	Ledger    *keys.Ledger
	Accounts  *accounts.Store
	Pool      *accounts.Pool
	Limiter   *ratelimit.Limiter
	Refresher *refresh.Refresher
	Usage     *usage.Recorder
	// Spend is what keys spent per day and week, against their budgets.
	Spend  *spend.Book
	Syncer *syncer.Syncer
	// Tiers is the product table in service (re-read by a sync).
	Tiers *tiers.Live
	// Batch coalesces the request path's pipelines (store.Coalescer).
	Batch *store.Coalescer
	// Login runs `account login`'s sign-ins; nil without OAUTH_TOKEN_URL.
	Login *login.Flow
	capacityParts
	alertParts
	// Expirer frees an expiring key's slot at its expiry.
	Expirer *syncer.Expirer
	// obs takes the background work's outcomes (Observe); set once the
	// HTTP surface exists, read by the refresher, sync and prober.
	obs atomic.Pointer[observerBox]
	// storeFileErr is the last STORE_FILE write error, said once.
	storeFileErr struct {
		sync.Mutex
		last string
	}
	// AdminListener, when set (ADMIN_LISTEN_ADDR), serves the admin API,
	// the dashboard and /metrics (HTTP.ServeAdmin).
	AdminListener net.Listener
}

// HTTP is the service's HTTP surface as the lifecycle drives it (package
// server): Serve and ServeAdmin run until ctx ends, then drain within
// grace and wait for the work their requests started.
type HTTP interface {
	Serve(ctx context.Context, ln net.Listener, grace time.Duration) error
	ServeAdmin(ctx context.Context, ln net.Listener, grace time.Duration) error
}

// Observer takes the outcomes of the background work (the server's
// metrics count them).
type Observer interface {
	RefreshOutcome(outcome string)
	SyncRun(ok bool)
	ProbeResult(result string)
}

type observerBox struct{ Observer }

// Observe makes o the taker of refresh, sync and probe outcomes. The
// refresher, the sync and the prober may already run (a SIGHUP sync), so
// the hand-over is atomic.
func (a *App) Observe(o Observer) { a.obs.Store(&observerBox{o}) }

// observer is the current Observer; before Observe, outcomes are dropped.
func (a *App) observer() Observer {
	if b := a.obs.Load(); b != nil {
		return b.Observer
	}
	return noObserver{}
}

type noObserver struct{}

func (noObserver) RefreshOutcome(string) {}
func (noObserver) SyncRun(bool)          {}
func (noObserver) ProbeResult(string)    {}

// StoreBudget bounds the store work of a request before it goes upstream;
// the coalescer gives each batch of the request path that long.
const StoreBudget = 900 * time.Millisecond

// Assemble opens the store and builds every component. Nothing runs yet.
func Assemble(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Tiers == nil {
		cfg.Tiers = tiers.Builtin()
	}
	log := cfg.Log
	if err := os.MkdirAll(cfg.ProductDir, 0o700); err != nil {
		return nil, fmt.Errorf("PRODUCT_DIR: %w", err)
	}
	store.RouteLogs(log)
	st, err := store.Open(cfg.RedisURL, cfg.Store)
	if err != nil {
		return nil, err
	}
	if cfg.StoreBudget <= 0 {
		cfg.StoreBudget = StoreBudget
	}

	rdb := st.Client
	a := &App{Cfg: cfg, Store: st, Batch: store.NewCoalescer(rdb, 2, cfg.StoreBudget), Tiers: tiers.NewLive(cfg.Tiers, cfg.TiersFile)}
	if err := a.restoreStore(ctx); err != nil {
		a.Batch.Close()
		st.Close()
		return nil, err
	}
	a.Ledger = keys.NewLedger(cfg.ProductDir, keys.NewRedisLocker(rdb))
	a.Ledger.OnError(func(err error) { log.WithError(err).Warn("ledger") })
	a.Keys = keys.NewStore(rdb, a.Ledger, cfg.Clock)
	a.Accounts = accounts.NewStore(rdb)
	a.Pool = accounts.NewPool(rdb, cfg.Clock, log)
	a.assembleCapacity()
	a.Limiter = ratelimit.New(rdb)
	a.Usage = usage.NewRecorder(rdb, cfg.Clock)
	a.Spend = spend.New(rdb, cfg.Clock)
	a.Refresher = refresh.New(rdb, refreshStore{a.Accounts}, &refreshFiles{s: a.Accounts, root: cfg.AccountDir, log: log.WithField("component", "refresh")}, a.Pool, refresh.Config{
		TokenURL: cfg.OAuthTokenURL, ClientID: cfg.OAuthClientID, Lead: cfg.RefreshLead,
		HTTPClient: cfg.TokenClient, Clock: cfg.Clock, Logger: log.WithField("component", "refresh"),
		OnOutcome: func(o string) { a.observer().RefreshOutcome(o) },
		GaveUp:    refreshAlerts{a},
	})
	a.assembleAlerts()
	a.Expirer = &syncer.Expirer{Pool: a.Pool, Keys: a.Keys, Clock: cfg.Clock, Log: log.WithField("component", "expiry")}
	a.Syncer = syncer.New(rdb, syncer.Config{AccountDir: cfg.AccountDir, Tiers: a.Tiers, ReloadTiers: a.Tiers.Reload, Clock: cfg.Clock,
		Log:       log.WithField("component", "sync"),
		OnRun:     func(ok bool) { a.observer().SyncRun(ok) },
		Retention: cfg.KeyRetention, Usage: a.Usage,
	}, a.Accounts, a.Pool, a.Ledger, a.Keys, a.Refresher)
	if cfg.OAuthTokenURL != "" {
		lc := cfg.Login
		lc.TokenURL, lc.ClientID, lc.HTTP, lc.Clock = cfg.OAuthTokenURL, cfg.OAuthClientID, cfg.TokenClient, cfg.Clock
		a.Login = login.New(rdb, lc)
	}
	return a, nil
}

// Close releases the store.
func (a *App) Close() error {
	a.closeLedger() // done already when Run ran; a no-op then
	a.Batch.Close()
	return a.Store.Close()
}
