package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// cmdDemo runs the whole service against the built-in fake upstream, with
// the embedded store and throw-away account and ledger folders, and prints a
// working curl. The fake upstream is wired here and only here: `serve`
// never reaches it.
func cmdDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	keep := fs.String("dir", "", "keep the demo's account and product folders in this folder")
	if err := fs.Parse(args); err != nil {
		return &usageError{"demo: " + err.Error()}
	}
	demoEnv := func(name string) string {
		switch name {
		case "REDIS_URL", "ACCOUNT_DIR", "PRODUCT_DIR", "UPSTREAM_URL", "OAUTH_TOKEN_URL":
			return "" // the demo always uses its own
		}
		return getenv(name)
	}
	cfg, err := loadConfig(demoEnv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	fake, err := fakeupstream.Listen("127.0.0.1:0", fakeupstream.Options{ChunkDelay: 40 * time.Millisecond, Chunks: 8})
	if err != nil {
		return err
	}
	defer fake.Close()
	dir := *keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "claude-route-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	cfg.AccountDir, cfg.ProductDir = filepath.Join(dir, "account"), filepath.Join(dir, "product")
	cfg.StoreFile = filepath.Join(dir, "store.snapshot") // with --dir, the demo's store is kept too
	cfg.UpstreamURL, cfg.OAuthTokenURL = fake.URL(), fake.TokenURL()
	if cfg.AdminToken == "" {
		cfg.AdminToken = "demo-" + randomHex(12)
	}
	// Two upstream accounts per tier: an API key and an OAuth login whose
	// token the refresher renews through the fake token endpoint.
	for _, t := range cfg.Tiers.Names() {
		apiKey := "sk-ant-api03-demo-" + randomHex(8)
		fake.AddAPIKey(apiKey)
		access, refresh := "sk-ant-oat01-demo-"+randomHex(8), "sk-ant-ort01-demo-"+randomHex(8)
		expires := time.Now().Add(8 * time.Hour)
		fake.AddOAuth(access, refresh, expires)
		files := map[string]any{
			t + "-api":   map[string]any{"apiKey": apiKey},
			t + "-oauth": map[string]any{"claudeAiOauth": map[string]any{"accessToken": access, "refreshToken": refresh, "expiresAt": expires.UnixMilli(), "scopes": []string{"user:inference"}, "subscriptionType": "max"}},
		}
		for name, body := range files {
			if err := writeJSON(filepath.Join(cfg.AccountDir, t, name+".json"), body); err != nil {
				return err
			}
		}
	}
	svc, ln, err := startApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.Close()
	// Sync before printing: the curl below must find the accounts in the
	// pool even when it is pasted before Run's own sync has finished.
	if _, err := svc.Syncer.Sync(ctx); err != nil {
		return err
	}
	key, rec, err := svc.Keys.Issue(ctx, "trial", 24*time.Hour, "demo key", "")
	if err != nil {
		return err
	}
	base := "http://" + displayAddr(ln.Addr().String())
	fmt.Fprintf(stdout, `claude-route demo: embedded store, fake upstream at %s
  dashboard:    %s/admin/   (admin token: %s)
  customer key: %s   (tier %s, id %s)

Try it:
  curl -sN %s/v1/messages -H 'x-api-key: %s' -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d '{"model":"claude-sonnet-4-5-20250929","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Hello"}]}'

Point Claude Code at it (the trial tier allows Sonnet; Claude Code's default is Opus):
  ANTHROPIC_BASE_URL=%s ANTHROPIC_API_KEY=%s claude --model sonnet

Operator commands from another shell:
  export CLAUDE_ROUTE_URL=%s ADMIN_TOKEN=%s
  %s pool

The fake upstream, for a second serve of your own:
  UPSTREAM_URL=%s
  OAUTH_TOKEN_URL=%s
%s`, fake.URL(), base, cfg.AdminToken, key, rec.Tier, rec.ID, base, key, base, key, base, cfg.AdminToken,
		selfCommand(), fake.URL(), fake.TokenURL(), demoFolders(*keep, dir, cfg, selfCommand(), fake))
	return svc.Run(ctx, ln)
}

// selfCommand is how to run this same binary from a shell: its path, or
// `go run ./cmd/claude-route` when it is a throw-away build of `go run`.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil || strings.Contains(exe, "go-build") || strings.HasSuffix(exe, ".test") {
		return "go run ./cmd/claude-route"
	}
	if strings.ContainsAny(exe, " '\"$") {
		return "'" + strings.ReplaceAll(exe, "'", `'\''`) + "'"
	}
	return exe
}

// demoFolders is the closing paragraph: where the folders are kept (with
// --dir) and a serve line over them, or that nothing is kept.
func demoFolders(keep, dir string, cfg *config, self string, fake *fakeupstream.Server) string {
	if keep == "" {
		return "\nCtrl-C stops the demo; nothing it made is kept (demo --dir DIR keeps its folders).\n"
	}
	return fmt.Sprintf(`
Its account and product folders are kept in %s. While the demo runs, a
second serve on another port can use them with the demo's fake upstream
(its own store, the real operator flow):
  ACCOUNT_DIR=%s PRODUCT_DIR=%s UPSTREAM_URL=%s OAUTH_TOKEN_URL=%s \
    LISTEN_ADDR=127.0.0.1:8081 ADMIN_TOKEN=%s %s serve
`, dir, cfg.AccountDir, cfg.ProductDir, fake.URL(), fake.TokenURL(), cfg.AdminToken, self)
}

func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
