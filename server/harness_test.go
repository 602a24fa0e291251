package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/app"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/store"
	"github.com/claude-route/claude-route/tiers"
)

const adminToken = "test-admin-token"

// keyIDOf is the admin API's non-secret id of a client key.
func keyIDOf(key string) string { return keys.ID(keys.Hash(key)) }

// env is one test world: a fake upstream, an account folder, a ledger and
// the real Redis, with one or more proxy instances sharing them.
type env struct {
	t        testing.TB
	fake     *fakeupstream.Server
	redisURL string
	acctDir  string
	prodDir  string
	tiers    *tiers.Table
	clock    clock.Clock
	lead     time.Duration
	// usageFlush is the instances' usage flush interval (0: production's).
	usageFlush time.Duration
	pprofAddr  string
	logs       *testenv.Buffer
	apps       []*app.App
	// srvs are the instances' HTTP surfaces, apps[i]'s server at i.
	srvs   []*Server
	urls   []string
	stops  []func() // each instance's shutdown, waiting for Run to return
	srvCfg []func(*Config)
	// adminURLs are the instances' admin listeners (SeparateAdmin only).
	adminURLs []string
	tweaks    []func(*app.Config)
	alerts    app.AlertConfig
	// slack: the store deadlines of storeSlack, not production's.
	slack bool
	deps  []func(*Deps)
}

// withApp changes each instance's configuration before it is assembled.
func withApp(f func(*app.Config)) envOpt { return func(e *env) { e.tweaks = append(e.tweaks, f) } }

// stop shuts instance i down as SIGTERM would and waits for it to finish.
func (e *env) stop(i int) { e.stops[i]() }

type envOpt func(*env)

func withClock(c clock.Clock) envOpt { return func(e *env) { e.clock = c } }

// withLead sets how long before expiry tokens are refreshed.
func withLead(d time.Duration) envOpt { return func(e *env) { e.lead = d } }

// withUsageFlush sets how often instances flush usage totals.
func withUsageFlush(d time.Duration) envOpt { return func(e *env) { e.usageFlush = d } }

// withServerConfig adjusts each instance's server settings.
func withServerConfig(f func(*Config)) envOpt {
	return func(e *env) { e.srvCfg = append(e.srvCfg, f) }
}

// withPprof serves profiles on addr.
func withPprof(addr string) envOpt { return func(e *env) { e.pprofAddr = addr } }

// withAlerts posts alerts to url, watching the pool every 50 ms.
func withAlerts(url string) envOpt {
	return func(e *env) {
		e.alerts = app.AlertConfig{WebhookURL: url, WatchEvery: 50 * time.Millisecond, RetryBase: 100 * time.Millisecond}
	}
}

// withQuickWatch makes the alerts' pool watcher read every 200 ms instead
// of production's 5 s (tests that wait for an alert).
func withQuickWatch() envOpt { return func(e *env) { e.alerts.WatchEvery = 200 * time.Millisecond } }

// withRedis points the world at a private redis-server (store-fault tests).
func withRedis(url string) envOpt { return func(e *env) { e.redisURL = url } }

// withDeps changes each instance's server dependencies before the server
// is built (a fault between the server and a store).
func withDeps(f func(*Deps)) envOpt { return func(e *env) { e.deps = append(e.deps, f) } }

// withStoreSlack gives the world the store deadlines of storeSlack, which
// worlds on the shared test store have anyway.
func withStoreSlack() envOpt { return func(e *env) { e.slack = true } }

// storeSlack is the store deadlines of worlds on the shared test store:
// seconds instead of production's 300/400 ms per call and 900 ms per batch
// of a request's store work. That store answers as late as the machine's
// load makes it, and production answers a late store with 503 (under load
// TestKeyLifecycleAdminAPI got one). Store-fault tests use a private store
// (withRedis) and keep production's deadlines.
var storeSlack = struct {
	call   store.Options
	budget time.Duration
}{store.Options{DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}, 10 * time.Second}

// newEnvB is newEnv for benchmarks.
func newEnvB(b *testing.B, opts ...envOpt) *env { return newEnv(b, opts...) }

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	e := &env{
		t:       t,
		fake:    fakeupstream.Start(fakeupstream.Options{}),
		acctDir: t.TempDir(),
		prodDir: t.TempDir(),
		tiers:   tiers.Builtin(),
		clock:   clock.Real{},
		logs:    &testenv.Buffer{},
	}
	for _, o := range opts {
		o(e)
	}
	if e.redisURL == "" {
		e.redisURL = testenv.RedisURL(t, 7)
		e.slack = true
	}
	t.Cleanup(e.fake.Close)
	return e
}

// apiAccount writes an API-key account file and registers the key upstream.
func (e *env) apiAccount(tier, name string) string {
	key := "sk-ant-api03-" + name + "-secret"
	e.fake.AddAPIKey(key)
	e.writeAccount(tier, name, map[string]any{"apiKey": key})
	return key
}

// oauthAccount writes a Claude Code credentials file.
func (e *env) oauthAccount(tier, name string, expires time.Time) (access, refresh string) {
	access, refresh = "sk-ant-oat01-"+name+"-access", "sk-ant-ort01-"+name+"-refresh"
	e.fake.AddOAuth(access, refresh, expires)
	e.writeAccount(tier, name, map[string]any{"claudeAiOauth": map[string]any{
		"accessToken": access, "refreshToken": refresh, "expiresAt": expires.UnixMilli(),
		"scopes": []string{"user:inference"}, "subscriptionType": "max"}})
	return access, refresh
}

func (e *env) writeAccount(tier, name string, body any) {
	e.t.Helper()
	p := filepath.Join(e.acctDir, tier, name+".json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		e.t.Fatal(err)
	}
	b, _ := json.Marshal(body)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// start runs one more proxy instance and returns its base URL.
func (e *env) start() string {
	e.t.Helper()
	log := logrus.New()
	log.SetOutput(e.logs)
	log.SetLevel(logrus.DebugLevel)
	if _, bench := e.t.(*testing.B); bench {
		log.SetLevel(logrus.InfoLevel) // production's level, so the figures are production's
	}
	ctx, cancel := context.WithCancel(context.Background())
	scfg := Config{AdminToken: adminToken, HeaderTimeout: 2 * time.Second}
	if e.slack {
		scfg.StoreBudget = storeSlack.budget
	}
	for _, f := range e.srvCfg {
		f(&scfg)
	}
	cfg := app.Config{
		UpstreamURL:     e.fake.URL(),
		RedisURL:        e.redisURL,
		AccountDir:      e.acctDir,
		ProductDir:      e.prodDir,
		Tiers:           e.tiers,
		OAuthTokenURL:   e.fake.TokenURL(),
		OAuthClientID:   fakeupstream.ClientID,
		RefreshLead:     e.lead,
		SyncInterval:    time.Hour,
		ShutdownGrace:   5 * time.Second,
		WatchInterval:   200 * time.Millisecond,
		UsageFlushEvery: e.usageFlush,
		PprofAddr:       e.pprofAddr,
		Clock:           e.clock,
		Log:             log,
	}
	cfg.Alerts = e.alerts
	if e.slack {
		cfg.Store, cfg.StoreBudget = storeSlack.call, storeSlack.budget
	}
	for _, f := range e.tweaks {
		f(&cfg)
	}
	a, err := app.Assemble(ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	srv := forApp(scfg, a, func(d *Deps) {
		for _, f := range e.deps {
			f(d)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	if scfg.SeparateAdmin {
		aln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.t.Fatal(err)
		}
		a.AdminListener = aln
		e.adminURLs = append(e.adminURLs, "http://"+aln.Addr().String())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx, ln, srv); err != nil {
			e.t.Errorf("run: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			a.Close()
		})
	}
	e.t.Cleanup(stop)
	e.stops = append(e.stops, stop)
	url := "http://" + ln.Addr().String()
	e.apps = append(e.apps, a)
	e.srvs = append(e.srvs, srv)
	e.urls = append(e.urls, url)
	// Run syncs before serving; wait until the server answers.
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return url
}

// issue creates a key through the admin API of the first instance.
func (e *env) issue(tier string, account ...string) string {
	e.t.Helper()
	body := map[string]string{"tier": tier}
	if len(account) > 0 {
		body["account"] = account[0]
	}
	var out struct {
		Key string `json:"key"`
	}
	status := e.admin(http.MethodPost, "/admin/api/keys", body, &out)
	if status != http.StatusCreated || out.Key == "" {
		e.t.Fatalf("issue %s: status %d", tier, status)
	}
	return out.Key
}

func (e *env) admin(method, path string, in, out any) int {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	base := e.urls[0]
	if len(e.adminURLs) > 0 {
		base = e.adminURLs[0]
	}
	req, _ := http.NewRequest(method, base+path, body)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// reply is a proxied answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) errType() string {
	var e struct {
		Type  string `json:"type"`
		Error struct{ Type, Message string }
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Type
}

func (r reply) errMessage() string {
	var e struct {
		Error struct{ Type, Message string }
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Message
}

func msgBody(model string, stream bool) string {
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 64, "stream": stream,
		"messages": []map[string]any{{"role": "user", "content": "Hello there, proxy"}}})
	return string(b)
}

func post(t testing.TB, url, path, key, body string, hdr ...string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// accountViews reads GET /admin/api/accounts afresh.
func (e *env) accountViews() []AccountView {
	e.t.Helper()
	var out struct{ Accounts []AccountView }
	if st := e.admin(http.MethodGet, "/admin/api/accounts", nil, &out); st != http.StatusOK {
		e.t.Fatalf("accounts: %d", st)
	}
	return out.Accounts
}
