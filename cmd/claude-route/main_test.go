package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	_ = os.WriteFile(notDir, []byte("x"), 0o600)
	badTiers := filepath.Join(dir, "tiers.json")
	_ = os.WriteFile(badTiers, []byte(`{"tiers":[{"name":"gold","slots":0}]}`), 0o600)
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"LISTEN_ADDR": "8080"}, "LISTEN_ADDR"},
		{map[string]string{"REDIS_URL": "ftp://x"}, "REDIS_URL"},
		{map[string]string{"UPSTREAM_URL": "not a url"}, "UPSTREAM_URL"},
		{map[string]string{"OAUTH_TOKEN_URL": "x"}, "OAUTH_TOKEN_URL"},
		{map[string]string{"SYNC_INTERVAL": "often"}, "SYNC_INTERVAL"},
		{map[string]string{"SYNC_INTERVAL": "-1h"}, "SYNC_INTERVAL"},
		{map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{map[string]string{"PROBE_INTERVAL": "-5m"}, "PROBE_INTERVAL"},
		{map[string]string{"MAX_BODY_BYTES": "lots"}, "MAX_BODY_BYTES"},
		{map[string]string{"STREAM_IDLE_TIMEOUT": "soon"}, "STREAM_IDLE_TIMEOUT"},
		{map[string]string{"ACCOUNT_COOLDOWN": "0s"}, "ACCOUNT_COOLDOWN"},
		{map[string]string{"ACCOUNT_MAX_FAILS": "0"}, "ACCOUNT_MAX_FAILS"},
		{map[string]string{"PPROF_ADDR": "6060"}, "PPROF_ADDR"},
		{map[string]string{"PPROF_ADDR": ":8080"}, "PPROF_ADDR"}, // the public listener's
		{map[string]string{"QUEUE_WAIT": "forever"}, "QUEUE_WAIT"},
		{map[string]string{"MAX_INFLIGHT_BODY_BYTES": "1024"}, "MAX_INFLIGHT_BODY_BYTES"},
		{map[string]string{"TIERS_FILE": badTiers}, "TIERS_FILE"},
		{map[string]string{"TIERS_FILE": filepath.Join(dir, "missing.json")}, "TIERS_FILE"},
		{map[string]string{"ACCOUNT_DIR": notDir}, "ACCOUNT_DIR"},
		{map[string]string{"ADMIN_TOKEN": "change-me"}, "ADMIN_TOKEN: must be at least 16 characters"},
		{map[string]string{"ADMIN_LISTEN_ADDR": "9090"}, "ADMIN_LISTEN_ADDR"},
		{map[string]string{"BODY_READ_TIMEOUT": "slow"}, "BODY_READ_TIMEOUT"},
		{map[string]string{"BODY_MIN_RATE": "fast"}, "BODY_MIN_RATE"},
		{map[string]string{"BODY_RATE_GRACE": "0s"}, "BODY_RATE_GRACE"},
		{map[string]string{"GC_HEAP_FLOOR": "32MB"}, "GC_HEAP_FLOOR"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"serve"}, envOf(c.env), io.Discard, &stderr)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
				t.Fatalf("exit %d, stderr %q: want one line naming %s", code, stderr.String(), c.want)
			}
		})
	}
	if code := run(context.Background(), []string{"bogus"}, envOf(nil), io.Discard, io.Discard); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
}

// TestDemoCurlWorksWhenPasted runs `demo` and pastes the curl it prints
// into a shell.
func TestDemoCurlWorksWhenPasted(t *testing.T) {
	_, err := exec.LookPath("curl")
	testenv.Require(t, err == nil, "curl")
	ctx, cancel := context.WithCancel(context.Background())
	out := &testenv.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"demo"}, envOf(map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}), out, io.Discard)
	}()
	var curl string
	deadline := time.Now().Add(20 * time.Second)
	for curl == "" && time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "curl ") {
				curl = l
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if curl == "" {
		cancel()
		t.Fatalf("demo printed no curl: %q", out.String())
	}
	res, err := exec.Command("bash", "-c", curl).CombinedOutput()
	if err != nil || !strings.Contains(string(res), "event: message_stop") || !strings.Contains(string(res), "text_delta") {
		t.Fatalf("pasted curl: %v\n%s", err, res)
	}
	// The operator commands it suggests work too.
	m := regexp.MustCompile(`export CLAUDE_ROUTE_URL=(\S+) ADMIN_TOKEN=(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no operator hint: %q", out.String())
	}
	var pool bytes.Buffer
	if code := run(ctx, []string{"pool", "--tier", "trial"}, envOf(map[string]string{"CLAUDE_ROUTE_URL": m[1], "ADMIN_TOKEN": m[2]}), &pool, io.Discard); code != 0 || !strings.Contains(pool.String(), "trial-api") {
		t.Fatalf("pool: %d %q", code, pool.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("demo did not stop")
	}
}

// TestOperatorCommands drives every operator command against `serve`.
func TestOperatorCommands(t *testing.T) {
	redisURL := testenv.RedisURL(t, 8)
	fake := fakeupstream.Start(fakeupstream.Options{})
	defer fake.Close()
	fake.AddAPIKey("sk-ant-api03-op")
	acct, prod := t.TempDir(), t.TempDir()
	_ = os.MkdirAll(filepath.Join(acct, "high"), 0o700)
	_ = os.WriteFile(filepath.Join(acct, "high", "h1.json"), []byte(`{"apiKey":"sk-ant-api03-op"}`), 0o600)
	env := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "REDIS_URL": redisURL, "ACCOUNT_DIR": acct, "PRODUCT_DIR": prod,
		"UPSTREAM_URL": fake.URL(), "ADMIN_TOKEN": "op-token-0123456789",
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- cmdServe(ctx, envOf(env), io.Discard, ready) }()
	addr := <-ready
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	env["CLAUDE_ROUTE_URL"] = "http://" + addr
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(ctx, args, envOf(env), &out, &errb)
		return out.String() + errb.String(), code
	}
	out, code := cli("key", "issue", "--tier", "high", "--account", "h1", "--note", "alice")
	key := strings.SplitN(out, "\n", 2)[0]
	if code != 0 || !regexp.MustCompile(`^sk-cli-v1-[0-9A-Za-z]{32}$`).MatchString(key) {
		t.Fatalf("issue: %d %q", code, out)
	}
	if out, code := cli("key", "issue", "--tier", "high", "--account", "nope"); code == 0 || !strings.Contains(out, "not in tier") {
		t.Fatalf("unknown account: %d %q", code, out)
	}
	if out, code := cli("key", "issue", "--tier", "gold"); code == 0 || !strings.Contains(out, "unknown tier") {
		t.Fatalf("unknown tier: %d %q", code, out)
	}
	if out, _ := cli("key", "list", "--tier", "high"); !strings.Contains(out, "alice") || !strings.Contains(out, "h1") || strings.Contains(out, key) {
		t.Fatalf("list: %q", out)
	}
	if out, _ := cli("key", "show", key, "--json"); !strings.Contains(out, `"tier": "high"`) || strings.Contains(out, key) {
		t.Fatalf("show: %q", out)
	}
	if out, _ := cli("pool"); !strings.Contains(out, "h1") || !strings.Contains(out, "slots 1/3") {
		t.Fatalf("pool: %q", out)
	}
	if out, code := cli("blacklist", "h1", "--reason", "maintenance"); code != 0 {
		t.Fatalf("blacklist: %q", out)
	}
	if out, _ := cli("pool", "--tier", "high"); !strings.Contains(out, "BLACKLISTED") || !strings.Contains(out, "maintenance") {
		t.Fatalf("pool after blacklist: %q", out)
	}
	if out, _ := cli("recover", "h1"); !strings.Contains(out, "off the blacklist") {
		t.Fatalf("recover: %q", out)
	}
	if out, _ := cli("sync"); !strings.Contains(out, "sync: accounts") {
		t.Fatalf("sync: %q", out)
	}
	if out, _ := cli("status"); !strings.Contains(out, "store: up") || !strings.Contains(out, "last sync:") || !strings.Contains(out, "h1") {
		t.Fatalf("status: %q", out)
	}
	// One request, then the billing export shows it as one CSV row for today.
	req, _ := http.NewRequest(http.MethodPost, env["CLAUDE_ROUTE_URL"]+"/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("message: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	day := time.Now().UTC().Format("2006-01-02")
	var csvOut string
	for i := 0; i < 100; i++ { // usage is recorded just after the answer
		if csvOut, code = cli("usage", "export", "--since", day, "--until", day, "--tier", "high", "--csv"); strings.Count(csvOut, "\n") == 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(csvOut), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "day,key_id,tier,note,requests,input_tokens") ||
		!strings.HasPrefix(lines[1], day+","+keyRef(key)+",high,alice,1,") {
		t.Fatalf("usage export: %d %q", code, csvOut)
	}
	if out, code := cli("usage", "export", "--since", day); code != 2 || !strings.Contains(out, "--until") {
		t.Fatalf("usage export without --until: %d %q", code, out)
	}
	if out, _ := cli("key", "revoke", key); !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %q", out)
	}
	if out, _ := cli("pool", "--json"); !strings.Contains(out, `"slots_used":0`) {
		t.Fatalf("revoking must free the slot: %q", out)
	}
	env["ADMIN_TOKEN"] = "wrong"
	if out, code := cli("pool"); code == 0 || !strings.Contains(out, "Invalid admin token") {
		t.Fatalf("wrong token: %d %q", code, out)
	}
}

// GC_HEAP_FLOOR is on by default, off at 0, and off when the operator
// sets GOGC: the collector is theirs then.
func TestHeapFloorConfig(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want int64
	}{
		{nil, 32 << 20},
		{map[string]string{"GC_HEAP_FLOOR": "0"}, 0},
		{map[string]string{"GC_HEAP_FLOOR": "134217728"}, 128 << 20},
		{map[string]string{"GOGC": "200"}, 0},
	} {
		cfg, err := loadConfig(envOf(c.env))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.HeapFloor != c.want {
			t.Errorf("env %v: heap floor %d, want %d", c.env, cfg.HeapFloor, c.want)
		}
	}
}
