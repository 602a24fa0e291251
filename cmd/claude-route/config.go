package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/claude-route/claude-route/login"
	"github.com/claude-route/claude-route/store"
	"github.com/claude-route/claude-route/tiers"
)

// config is the environment of docs/contract.md, validated once at start.
type config struct {
	ListenAddr    string
	RedisURL      string
	AccountDir    string
	ProductDir    string
	TiersFile     string
	Tiers         *tiers.Table
	UpstreamURL   string
	OAuthTokenURL string
	OAuthClientID string

	// OAuthAuthorizeURL and OAuthRedirectURI: the sign-in of `account login`.
	OAuthAuthorizeURL string
	OAuthRedirectURI  string

	AdminToken    string
	SyncInterval  time.Duration
	KeyRetention  time.Duration
	LogFormat     string
	LogLevel      string
	MaxBodyBytes  int64
	HeaderTimeout time.Duration
	ShutdownGrace time.Duration
	RefreshLead   time.Duration
	// ProbeInterval is PROBE_INTERVAL; negative when "0" turned probes off.
	ProbeInterval  time.Duration
	ClaudeRouteURL string
	// StreamIdleTimeout: an answer with no byte from the upstream for
	// this long is ended (STREAM_IDLE_TIMEOUT).
	StreamIdleTimeout time.Duration
	// AccountMaxFails failures in a row within 60 s cool an account for
	// AccountCooldown (passive health).
	AccountMaxFails int
	AccountCooldown time.Duration

	// AdminListenAddr, when set, is the only listener of the admin API,
	// the dashboard and /metrics (ADMIN_LISTEN_ADDR).
	AdminListenAddr string
	// BodyReadTimeout bounds how long a client may take to send its body.
	BodyReadTimeout time.Duration
	// BodyMinRate (BODY_MIN_RATE, bytes a second; negative when "0" turned
	// it off) and BodyRateGrace (BODY_RATE_GRACE): a body slower than the
	// rate once the grace has passed gets 408.
	BodyMinRate   int64
	BodyRateGrace time.Duration
	// HeapFloor is GC_HEAP_FLOOR: the collector's heap goal is kept at
	// least this many bytes (internal/gcfloor); 0, or GOGC set, leaves the
	// collector alone.
	HeapFloor int64
	// PprofAddr serves runtime profiles on their own listener (PPROF_ADDR,
	// off by default).
	PprofAddr string
	// QueueWait is QUEUE_WAIT: how long a request over its key's
	// concurrency waits for a place.
	QueueWait time.Duration
	// MaxInflightBodyBytes is MAX_INFLIGHT_BODY_BYTES: request bytes in
	// flight across the process.
	MaxInflightBodyBytes int64
	// AlertWebhookURL is ALERT_WEBHOOK_URL: where alerts are posted.
	AlertWebhookURL string
	// CacheTTL is CACHE_TTL: how long a key's record and an account's
	// state are served from memory; negative when "0" turned it off.
	CacheTTL time.Duration
	// deployConfig: TLS, METRICS_PUBLIC, STORE_FILE (config_deploy.go).
	deployConfig
}

// minAdminToken is the shortest ADMIN_TOKEN serve accepts.
const minAdminToken = 16

// configError names the variable at fault, so a bad start is one clear line.
type configError struct {
	Var string
	Err error
}

func (e *configError) Error() string { return e.Var + ": " + e.Err.Error() }
func (e *configError) Unwrap() error { return e.Err }

func env(getenv func(string) string, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return def
}

func loadConfig(getenv func(string) string) (*config, error) {
	c := &config{
		ListenAddr:     env(getenv, "LISTEN_ADDR", ":8080"),
		RedisURL:       env(getenv, "REDIS_URL", ""),
		AccountDir:     env(getenv, "ACCOUNT_DIR", "./account"),
		ProductDir:     env(getenv, "PRODUCT_DIR", "./product"),
		TiersFile:      env(getenv, "TIERS_FILE", ""),
		UpstreamURL:    env(getenv, "UPSTREAM_URL", "https://api.anthropic.com"),
		OAuthTokenURL:  env(getenv, "OAUTH_TOKEN_URL", "https://platform.claude.com/v1/oauth/token"),
		OAuthClientID:  env(getenv, "OAUTH_CLIENT_ID", "9d1c250a-e61b-44d9-88ed-5944d1962f5e"),
		AdminToken:     getenv("ADMIN_TOKEN"),
		LogFormat:      env(getenv, "LOG_FORMAT", "text"),
		LogLevel:       env(getenv, "LOG_LEVEL", "info"),
		ClaudeRouteURL: env(getenv, "CLAUDE_ROUTE_URL", "http://127.0.0.1:8080"),
		PprofAddr:      env(getenv, "PPROF_ADDR", ""),
	}
	c.AlertWebhookURL = env(getenv, "ALERT_WEBHOOK_URL", "")
	c.OAuthAuthorizeURL = env(getenv, "OAUTH_AUTHORIZE_URL", login.DefaultAuthorizeURL)
	c.OAuthRedirectURI = env(getenv, "OAUTH_REDIRECT_URI", login.DefaultRedirectURI)
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		return nil, &configError{"LISTEN_ADDR", fmt.Errorf("want host:port like :8080, got %q", c.ListenAddr)}
	}
	c.AdminListenAddr = env(getenv, "ADMIN_LISTEN_ADDR", "")
	if c.AdminListenAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminListenAddr); err != nil {
			return nil, &configError{"ADMIN_LISTEN_ADDR", fmt.Errorf("want host:port like 127.0.0.1:9090, got %q", c.AdminListenAddr)}
		}
	}
	// Empty keeps the admin API closed; a short token could be guessed.
	if n := len(c.AdminToken); n > 0 && n < minAdminToken {
		return nil, &configError{"ADMIN_TOKEN", fmt.Errorf("must be at least %d characters, got %d (or empty to disable the admin API)", minAdminToken, n)}
	}
	if c.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(c.PprofAddr); err != nil {
			return nil, &configError{"PPROF_ADDR", fmt.Errorf("want host:port like 127.0.0.1:6060, got %q", c.PprofAddr)}
		}
		if c.PprofAddr == c.ListenAddr || c.PprofAddr == c.AdminListenAddr {
			return nil, &configError{"PPROF_ADDR", errors.New("must differ from LISTEN_ADDR and ADMIN_LISTEN_ADDR: profiles have a listener of their own")}
		}
	}
	if c.RedisURL != "" {
		if _, err := store.ParseURL(c.RedisURL); err != nil {
			return nil, &configError{"REDIS_URL", err}
		}
	}
	for _, u := range []struct{ name, val string }{{"UPSTREAM_URL", c.UpstreamURL}, {"OAUTH_TOKEN_URL", c.OAuthTokenURL}, {"OAUTH_AUTHORIZE_URL", c.OAuthAuthorizeURL}, {"OAUTH_REDIRECT_URI", c.OAuthRedirectURI}, {"CLAUDE_ROUTE_URL", c.ClaudeRouteURL}} {
		pu, err := url.Parse(u.val)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, &configError{u.name, fmt.Errorf("want an http(s) URL, got %q", u.val)}
		}
	}
	durations := []struct {
		name string
		def  string
		dst  *time.Duration
	}{
		{"SYNC_INTERVAL", "4h", &c.SyncInterval},
		{"KEY_RETENTION", "2160h", &c.KeyRetention}, // 90 days
		{"UPSTREAM_HEADER_TIMEOUT", "10m", &c.HeaderTimeout},
		{"BODY_READ_TIMEOUT", "60s", &c.BodyReadTimeout},
		{"BODY_RATE_GRACE", "5s", &c.BodyRateGrace},
		{"SHUTDOWN_GRACE", "30s", &c.ShutdownGrace},
		{"REFRESH_LEAD", "10m", &c.RefreshLead},
		{"STREAM_IDLE_TIMEOUT", "5m", &c.StreamIdleTimeout},
		{"ACCOUNT_COOLDOWN", "60s", &c.AccountCooldown},
		{"QUEUE_WAIT", "30s", &c.QueueWait},
	}
	for _, d := range durations {
		v := env(getenv, d.name, d.def)
		parsed, err := time.ParseDuration(v)
		if err != nil || parsed <= 0 {
			return nil, &configError{d.name, fmt.Errorf("want a positive duration like %s, got %q", d.def, v)}
		}
		*d.dst = parsed
	}
	// PROBE_INTERVAL may be 0 (no recovery probes), unlike the durations above.
	pi := env(getenv, "PROBE_INTERVAL", "30m")
	if d, err := time.ParseDuration(pi); err != nil || d < 0 {
		return nil, &configError{"PROBE_INTERVAL", fmt.Errorf("want a duration like 30m, or 0 for no probes, got %q", pi)}
	} else if d == 0 {
		c.ProbeInterval = -1
	} else {
		c.ProbeInterval = d
	}
	// CACHE_TTL may be 0 (every request reads the store).
	ct := env(getenv, "CACHE_TTL", "1s")
	if d, err := time.ParseDuration(ct); err != nil || d < 0 || d > time.Minute {
		return nil, &configError{"CACHE_TTL", fmt.Errorf("want a duration of at most 1m like 1s, or 0 for no cache, got %q", ct)}
	} else if d == 0 {
		c.CacheTTL = -1
	} else {
		c.CacheTTL = d
	}
	mb := env(getenv, "MAX_BODY_BYTES", strconv.Itoa(32<<20))
	n, err := strconv.ParseInt(mb, 10, 64)
	if err != nil || n < 1024 {
		return nil, &configError{"MAX_BODY_BYTES", fmt.Errorf("want a byte count of at least 1024, got %q", mb)}
	}
	c.MaxBodyBytes = n
	mf := env(getenv, "ACCOUNT_MAX_FAILS", "3")
	if c.AccountMaxFails, err = strconv.Atoi(mf); err != nil || c.AccountMaxFails < 1 {
		return nil, &configError{"ACCOUNT_MAX_FAILS", fmt.Errorf("want a count of at least 1, got %q", mf)}
	}
	br := env(getenv, "BODY_MIN_RATE", strconv.Itoa(64<<10))
	if c.BodyMinRate, err = strconv.ParseInt(br, 10, 64); err != nil || c.BodyMinRate < 0 {
		return nil, &configError{"BODY_MIN_RATE", fmt.Errorf("want bytes a second like 65536, or 0 for no minimum, got %q", br)}
	} else if c.BodyMinRate == 0 {
		c.BodyMinRate = -1
	}
	mi := env(getenv, "MAX_INFLIGHT_BODY_BYTES", strconv.Itoa(256<<20))
	if n, err = strconv.ParseInt(mi, 10, 64); err != nil || n < c.MaxBodyBytes {
		return nil, &configError{"MAX_INFLIGHT_BODY_BYTES", fmt.Errorf("want a byte count of at least MAX_BODY_BYTES (%d), got %q", c.MaxBodyBytes, mi)}
	}
	c.MaxInflightBodyBytes = n
	hf := env(getenv, "GC_HEAP_FLOOR", strconv.Itoa(32<<20))
	if c.HeapFloor, err = strconv.ParseInt(hf, 10, 64); err != nil || c.HeapFloor < 0 {
		return nil, &configError{"GC_HEAP_FLOOR", fmt.Errorf("want a byte count like 33554432, or 0 for none, got %q", hf)}
	}
	if getenv("GOGC") != "" {
		c.HeapFloor = 0 // the operator tunes the collector: leave it be
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return nil, &configError{"LOG_FORMAT", fmt.Errorf("want text or json, got %q", c.LogFormat)}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return nil, &configError{"LOG_LEVEL", fmt.Errorf("want debug, info, warn or error, got %q", c.LogLevel)}
	}
	if c.deployConfig, err = loadDeploy(getenv, c.RedisURL); err != nil {
		return nil, err
	}
	c.Tiers = tiers.Builtin()
	if c.TiersFile != "" {
		t, err := tiers.Load(c.TiersFile)
		if err != nil {
			return nil, &configError{"TIERS_FILE", err}
		}
		c.Tiers = t
	}
	if st, err := os.Stat(c.AccountDir); err == nil && !st.IsDir() {
		return nil, &configError{"ACCOUNT_DIR", fmt.Errorf("%s is not a directory", c.AccountDir)}
	}
	if st, err := os.Stat(c.ProductDir); err == nil && !st.IsDir() {
		return nil, &configError{"PRODUCT_DIR", fmt.Errorf("%s is not a directory", c.ProductDir)}
	}
	return c, nil
}
