package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/app"
	"github.com/claude-route/claude-route/internal/gcfloor"
	"github.com/claude-route/claude-route/internal/logbuf"
	"github.com/claude-route/claude-route/login"
	"github.com/claude-route/claude-route/server"
)

func newLogger(cfg *config, out io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(out)
	if cfg.LogFormat == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	lvl, _ := logrus.ParseLevel(cfg.LogLevel)
	log.SetLevel(lvl)
	return log
}

func appConfig(cfg *config, log *logrus.Logger) app.Config {
	return app.Config{
		UpstreamURL: cfg.UpstreamURL,
		RedisURL:    cfg.RedisURL, AccountDir: cfg.AccountDir, ProductDir: cfg.ProductDir,
		Tiers: cfg.Tiers, TiersFile: cfg.TiersFile, StoreFile: cfg.StoreFile, OAuthTokenURL: cfg.OAuthTokenURL, OAuthClientID: cfg.OAuthClientID,
		Login:       login.Config{AuthorizeURL: cfg.OAuthAuthorizeURL, RedirectURI: cfg.OAuthRedirectURI},
		RefreshLead: cfg.RefreshLead, SyncInterval: cfg.SyncInterval, KeyRetention: cfg.KeyRetention, ShutdownGrace: cfg.ShutdownGrace,
		PprofAddr: cfg.PprofAddr,
		Capacity: app.CapacityConfig{ProbeInterval: cfg.ProbeInterval, QueueWait: cfg.QueueWait,
			Health: accounts.Health{MaxFails: cfg.AccountMaxFails, Cooldown: cfg.AccountCooldown}},
		Alerts: app.AlertConfig{WebhookURL: cfg.AlertWebhookURL},
		Log:    log,
	}
}

// serverConfig is the HTTP surface's own settings; the upstream URL and
// the account folder come from the App (server.ForApp).
func serverConfig(cfg *config) server.Config {
	return server.Config{
		MaxBodyBytes: cfg.MaxBodyBytes,
		AdminToken:   cfg.AdminToken, HeaderTimeout: cfg.HeaderTimeout,
		StreamIdleTimeout: cfg.StreamIdleTimeout,
		BodyReadTimeout:   cfg.BodyReadTimeout, SeparateAdmin: cfg.AdminListenAddr != "",
		BodyMinRate: cfg.BodyMinRate, BodyRateGrace: cfg.BodyRateGrace,
		MaxInflightBodyBytes: cfg.MaxInflightBodyBytes,
		CacheTTL:             cfg.CacheTTL,
		MetricsPublic:        cfg.MetricsPublic,
	}
}

// cmdServe runs the service until ctx ends (SIGINT/SIGTERM). ready, when
// set, receives the bound address (tests listen on port 0).
func cmdServe(ctx context.Context, getenv func(string) string, logOut io.Writer, ready chan<- string) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	// Lines leave in batches (logbuf): the last ones are written when
	// serve returns, after the shutdown's own lines.
	lb := logbuf.New(logOut, 100*time.Millisecond)
	defer lb.Close()
	log := newLogger(cfg, lb)
	if cfg.AdminToken == "" {
		log.Warn("ADMIN_TOKEN is empty: the admin API, the dashboard's data and the operator commands are refused")
	}
	if _, err := os.Stat(cfg.AccountDir); err != nil {
		log.Warnf("ACCOUNT_DIR %s does not exist: no upstream accounts yet. Add files as %s/<tier>/<name>.json, then run `claude-route sync`", cfg.AccountDir, cfg.AccountDir)
	}
	if cfg.HeapFloor > 0 {
		fctx, stopFloor := context.WithCancel(ctx)
		floorDone := make(chan struct{})
		go func() {
			defer close(floorDone)
			gcfloor.Run(fctx, uint64(cfg.HeapFloor), 100, 500*time.Millisecond)
		}()
		defer func() { stopFloor(); <-floorDone }()
	}
	svc, ln, err := startApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	defer syncOnHangup(ctx, func(ctx context.Context) (string, error) {
		rep, err := svc.Syncer.Sync(ctx)
		return rep.String(), err
	}, log)()
	log.Infof("claude-route listening on %s (accounts: %s, ledger: %s)", ln.Addr(), cfg.AccountDir, cfg.ProductDir)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	return svc.Run(ctx, ln)
}

// service is an assembled App and its HTTP surface.
type service struct {
	*app.App
	http *server.Server
}

// Run serves until ctx ends (app.App.Run with the service's HTTP surface).
func (s service) Run(ctx context.Context, ln net.Listener) error { return s.App.Run(ctx, ln, s.http) }

// startApp assembles the service and binds its listener; the caller runs
// and closes it.
func startApp(ctx context.Context, cfg *config, log *logrus.Logger) (service, net.Listener, error) {
	a, err := app.Assemble(ctx, appConfig(cfg, log))
	if err != nil {
		return service{}, nil, err
	}
	svc := service{App: a, http: server.ForApp(serverConfig(cfg), a)}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		a.Close()
		return service{}, nil, &configError{"LISTEN_ADDR", err}
	}
	if ln, err = serveTLS(cfg, ln, log); err != nil {
		a.Close()
		return service{}, nil, err
	}
	if cfg.AdminListenAddr != "" {
		aln, err := net.Listen("tcp", cfg.AdminListenAddr)
		if err != nil {
			ln.Close()
			a.Close()
			return service{}, nil, &configError{"ADMIN_LISTEN_ADDR", err}
		}
		a.AdminListener = aln
		log.Infof("admin API, dashboard and /metrics on %s only", aln.Addr())
	}
	return svc, ln, nil
}

// cmdHealthcheck asks the local server's /health (the Docker HEALTHCHECK;
// the image has no curl).
func cmdHealthcheck(ctx context.Context, getenv func(string) string) error {
	addr := env(getenv, "LISTEN_ADDR", ":8080")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &configError{"LISTEN_ADDR", err}
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url, client := healthClient(getenv, net.JoinHostPort(host, port))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}
