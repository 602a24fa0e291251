package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/refresh"
	"github.com/claude-route/claude-route/spend"
	"github.com/claude-route/claude-route/store"
	"github.com/claude-route/claude-route/syncer"
	"github.com/claude-route/claude-route/tiers"
	"github.com/claude-route/claude-route/usage"
)

// AppConfig is everything a running claude-route needs.
type AppConfig struct {
	Server        Config
	RedisURL      string
	AccountDir    string
	ProductDir    string
	Tiers         *tiers.Table
	OAuthTokenURL string
	OAuthClientID string
	RefreshLead   time.Duration
	SyncInterval  time.Duration
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
}

// App is an assembled service: the store, every package, and the server.
type App struct {
	Cfg       AppConfig
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
	// batch coalesces the request path's pipelines (store.Coalescer).
	batch *store.Coalescer
	capacityParts
	alertParts
	// Expirer frees an expiring key's slot at its expiry.
	Expirer *syncer.Expirer
	Server  *Server
	// storeFileErr is the last STORE_FILE write error, said once.
	storeFileErr struct {
		sync.Mutex
		last string
	}
	// AdminListener, when set (ADMIN_LISTEN_ADDR), serves the admin API,
	// the dashboard and /metrics; Config.SeparateAdmin must be set too.
	AdminListener net.Listener
}

// Assemble opens the store and builds every component. Nothing runs yet.
func Assemble(ctx context.Context, cfg AppConfig) (*App, error) {
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
	st, err := store.Open(cfg.RedisURL, store.Options{})
	if err != nil {
		return nil, err
	}

	rdb := st.Client
	a := &App{Cfg: cfg, Store: st, batch: store.NewCoalescer(rdb, 2, storeBudget), Tiers: tiers.NewLive(cfg.Tiers, cfg.TiersFile)}
	if err := a.restoreStore(ctx); err != nil {
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
		OnOutcome: func(o string) { a.Server.RefreshOutcome(o) },
		GaveUp:    refreshAlerts{a},
	})
	a.assembleAlerts()
	a.Expirer = &syncer.Expirer{Pool: a.Pool, Keys: a.Keys, Clock: cfg.Clock, Log: log.WithField("component", "expiry")}
	a.Syncer = syncer.New(rdb, syncer.Config{AccountDir: cfg.AccountDir, Tiers: a.Tiers, ReloadTiers: a.Tiers.Reload, Clock: cfg.Clock,
		Log:       log.WithField("component", "sync"),
		OnRun:     func(ok bool) { a.Server.SyncRun(ok) },
		Retention: cfg.KeyRetention, Usage: a.Usage,
	}, a.Accounts, a.Pool, a.Ledger, a.Keys, a.Refresher)
	cfg.Server.AccountDir = cfg.AccountDir
	cfg.Server.Login.TokenURL, cfg.Server.Login.ClientID, cfg.Server.Login.HTTP, cfg.Server.Login.Clock = cfg.OAuthTokenURL, cfg.OAuthClientID, cfg.TokenClient, cfg.Clock
	a.Server = New(cfg.Server, Deps{
		Redis: rdb, Store: st, Tiers: a.Tiers, Keys: a.Keys, Pool: a.Pool, Accounts: a.Accounts,
		Limiter: a.Limiter, Refresher: a.Refresher, Usage: a.Usage, Spend: a.Spend, Syncer: a.Syncer,
		Util: a.Util, Leases: a.Leases, Clock: cfg.Clock, Log: log, Alerts: a.Alerts,
		Batch: a.batch,
	})
	return a, nil
}

// Run syncs once, then serves on ln with the refresher and the periodic
// sync running, until ctx ends; then it drains and stops everything.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	log := a.Cfg.Log
	bgctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if err := a.servePprof(bgctx, &wg); err != nil {
		stop()
		return err
	}
	if err := a.Limiter.Preload(ctx); err != nil {
		log.WithError(err).Warn("could not preload the quota script; it loads on first use")
	}
	// A ledger still in the one-file-per-tier form becomes snapshots and
	// journals now, before anything reads or writes it.
	if err := a.Ledger.Migrate(ctx); err != nil {
		log.WithError(err).Error("could not migrate the ledger to its journal form; each tier migrates at its next change")
	}
	if rep, err := a.Syncer.Sync(ctx); errors.Is(err, syncer.ErrNoAccountDir) {
		// A new install: `serve` has already warned, once, what to create.
		log.WithError(err).Debug("initial sync skipped: no account folder yet")
	} else if err != nil {
		// A store that is down at start is not fatal: requests get 503 and
		// the watchdog below syncs as soon as the store answers.
		log.WithError(err).Error("initial sync failed: fix the cause and run `claude-route sync` (a store that was down is synced by itself when it answers)")
	} else {
		log.Debug(rep.String())
	}
	a.runCapacity(bgctx, &wg)
	a.runAlerts(bgctx, &wg)
	a.runTiersFollow(bgctx, &wg)
	a.runStoreFile(bgctx, &wg)
	wg.Add(4)
	go func() {
		defer wg.Done()
		a.Expirer.Run(bgctx)
	}()
	go func() {
		defer wg.Done()
		if err := a.Refresher.Run(bgctx); err != nil && bgctx.Err() == nil {
			log.WithError(err).Error("refresher stopped")
		}
	}()
	go func() {
		defer wg.Done()
		a.Syncer.Run(bgctx, a.Cfg.SyncInterval)
	}()
	go func() {
		defer wg.Done()
		a.watchStore(bgctx)
	}()
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Spares: a key's next quota place taken ahead of it. It stops
		// after the server drained, settling every spare it held.
		a.Limiter.Run(bgctx)
	}()
	go func() {
		defer wg.Done()
		ulog := log.WithField("component", "usage")
		lastErr := ""
		a.Usage.Run(bgctx, a.Cfg.UsageFlushEvery, func(err error) {
			if err.Error() != lastErr { // said once per distinct cause
				ulog.WithError(err).Warn("usage totals not flushed; retrying every second")
				lastErr = err.Error()
			}
		})
	}()
	adminErr := make(chan error, 1)
	if a.AdminListener != nil {
		go func() { adminErr <- a.Server.ServeAdmin(ctx, a.AdminListener, a.Cfg.ShutdownGrace) }()
	} else {
		adminErr <- nil
	}
	err := a.Server.Serve(ctx, ln, a.Cfg.ShutdownGrace)
	stop()
	wg.Wait()
	a.flushUsage()
	a.saveStoreFile() // after the usage totals: they are in it
	a.closeLedger()
	if aerr := <-adminErr; err == nil {
		err = aerr
	}
	return err
}

// closeLedger writes the ledger changes still queued (bindings of the
// last moment) once the requests have drained, then stops its writer.
func (a *App) closeLedger() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Ledger.Close(ctx); err != nil {
		a.Cfg.Log.WithError(err).Errorf("%d ledger changes not written at shutdown (sync writes bindings back from the store)", a.Ledger.Pending())
	}
}

// flushUsage writes the usage totals still in memory once the requests
// have drained (shutdown, SIGTERM): a graceful stop loses no token.
func (a *App) flushUsage() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		err := a.Usage.Flush(ctx)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			a.Cfg.Log.WithError(err).Errorf("usage totals of %d subjects lost at shutdown: the store did not take them", a.Usage.Unflushed())
			return
		}
		select { // a store that blinks gets a few tries; the batch is idempotent
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// watchStore syncs at once when the store comes back empty: Redis was
// flushed, restarted without persistence or failed over to an empty
// replica. Without it, customers would be refused until the next periodic
// sync. The sync report's presence is the marker of a synced store.
func (a *App) watchStore(ctx context.Context) {
	every := a.Cfg.WatchInterval
	if every <= 0 {
		// One small read a second: a failover to an empty replica is
		// repaired within about a second, not at the next periodic sync.
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastErr := ""
	var lastTry time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last, err := a.Syncer.Last(ctx)
		if err != nil || (last != nil && last.Error == "") {
			continue // store down (nothing to do yet) or synced
		}
		if last != nil && strings.Contains(last.Error, syncer.ErrNoAccountDir.Error()) {
			continue // an operator's fix, not a retry, ends this one
		}
		// A store without a report is synced at once; a failed sync is
		// retried at a calmer pace, as a full sync is not free.
		if last != nil && time.Since(lastTry) < watchRetry {
			continue
		}
		lastTry = time.Now()
		_, err = a.Syncer.Sync(ctx)
		switch {
		case err == nil:
			a.Cfg.Log.Warn("the store had no sync report (new, flushed or replaced): synced it")
			lastErr = ""
		case ctx.Err() == nil && err.Error() != lastErr:
			// Said once per distinct cause, not every tick.
			a.Cfg.Log.WithError(err).Error("sync failed; retrying in the background")
			lastErr = err.Error()
		}
	}
}

// watchRetry is how often the watchdog retries a sync that failed.
const watchRetry = 15 * time.Second

// Close releases the store.
func (a *App) Close() error {
	a.closeLedger() // done already when Run ran; a no-op then
	a.batch.Close()
	return a.Store.Close()
}

// refreshStore adapts the account store to what the refresher consumes.
type refreshStore struct{ s *accounts.Store }

func (r refreshStore) OAuthAccounts(ctx context.Context) ([]refresh.Account, error) {
	all, err := r.s.All(ctx)
	if err != nil {
		return nil, err
	}
	var out []refresh.Account
	for _, a := range all {
		if a.Kind == accounts.OAuth && !a.SetupToken() { // a setup token has nothing to refresh with
			out = append(out, refresh.Account{Name: a.Name, Tier: a.Tier, ExpiresAt: a.ExpiresAt})
		}
	}
	return out, nil
}

func (r refreshStore) Credentials(ctx context.Context, name string) (refresh.Creds, error) {
	a, err := r.s.Get(ctx, name)
	if err != nil {
		return refresh.Creds{}, err
	}
	return refresh.Creds{AccessToken: a.AccessToken, RefreshToken: a.RefreshToken, ExpiresAt: a.ExpiresAt}, nil
}

func (r refreshStore) SwapCredentials(ctx context.Context, name, usedRefresh string, next refresh.Creds) (bool, error) {
	return r.s.SwapCredentials(ctx, name, usedRefresh, next.AccessToken, next.RefreshToken, next.ExpiresAt)
}

// refreshFiles writes refreshed tokens back to the account's file, inside
// the account folder only. A file that cannot be updated (a link outside
// the folder, a read-only Secret mount) is said once per account: Redis
// keeps the new tokens, and a sync never moves them backwards.
type refreshFiles struct {
	s    *accounts.Store
	root string
	log  logrus.FieldLogger
	said sync.Map // account name → true once its file was reported
}

func (r *refreshFiles) WriteBack(ctx context.Context, name string, c refresh.Creds) error {
	a, err := r.s.Get(ctx, name)
	if err != nil {
		return err
	}
	if a.Path == "" {
		return nil
	}
	err = accounts.WriteBack(r.root, a.Path, c.AccessToken, c.RefreshToken, c.ExpiresAt)
	if errors.Is(err, accounts.ErrNotWritable) {
		if _, said := r.said.LoadOrStore(name, true); !said {
			r.log.WithField("account", name).WithError(err).Warn("account file not updated; the refreshed tokens are kept in the store")
		}
		return nil
	}
	return err
}
