package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

// TestLifecycleCommands runs the key and account verbs against a served
// instance, as an operator types them.
func TestLifecycleCommands(t *testing.T) {
	redisURL := testenv.RedisURL(t, 8)
	fake := fakeupstream.Start(fakeupstream.Options{})
	defer fake.Close()
	fake.AddAPIKey("sk-ant-api03-op")
	acct, prod := t.TempDir(), t.TempDir()
	_ = os.MkdirAll(filepath.Join(acct, "trial"), 0o700)
	_ = os.WriteFile(filepath.Join(acct, "trial", "t1.json"), []byte(`{"apiKey":"sk-ant-api03-op"}`), 0o600)
	env := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "REDIS_URL": redisURL, "ACCOUNT_DIR": acct, "PRODUCT_DIR": prod,
		"UPSTREAM_URL": fake.URL(), "ADMIN_TOKEN": "op-token-0123456789",
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- cmdServe(ctx, envOf(env), io.Discard, ready) }()
	env["CLAUDE_ROUTE_URL"] = "http://" + <-ready
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(ctx, args, envOf(env), &out, &errb)
		return out.String() + errb.String(), code
	}

	out, code := cli("key", "issue", "--tier", "trial", "--count", "3", "--csv", "--note", "batch")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 4 || strings.Join(rows[0], ",") != "id,key,tier,expires,note,first_use_validity_seconds" || rows[1][4] != "batch" {
		t.Fatalf("issue --csv: %d %q", code, out)
	}
	id, key := rows[1][0], rows[1][1]
	if rows[1][3] == "" || rows[1][5] != "" {
		t.Fatalf("a key valid from issue: %q", rows[1])
	}
	// Keys sold from stock: no expiry until their first use, and the
	// validity that will start then.
	out, code = cli("key", "issue", "--tier", "trial", "--count", "2", "--csv", "--from-first-use")
	stock, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(stock) != 3 || stock[1][3] != "" || stock[1][5] != "86400" || stock[2][5] != "86400" {
		t.Fatalf("issue --from-first-use --csv: %d %q", code, out)
	}
	if out, code := cli("key", "show", stock[1][0]); code != 0 || !strings.Contains(out, "not activated (valid 1 day from first use)") {
		t.Fatalf("show of a key on the shelf: %d %q", code, out)
	}
	if out, code := cli("key", "issue", "--tier", "trial", "--from-first-use"); code != 0 || !strings.Contains(out, "expires not activated") {
		t.Fatalf("issue --from-first-use: %d %q", code, out)
	}
	// Six keys wait for a slot now and t1 has seven: selling two more warns
	// on stderr, --strict refuses, pool shows it.
	var so, se bytes.Buffer
	if code := run(ctx, []string{"key", "issue", "--tier", "trial", "--count", "2"}, envOf(env), &so, &se); code != 0 ||
		!strings.HasPrefix(se.String(), "warning: tier trial would have 8 keys not yet bound for 7 free slots: 1 of them gets 503") || len(strings.Fields(so.String())) != 2 {
		t.Fatalf("oversold issue: %d stdout %q stderr %q", code, so.String(), se.String())
	}
	if out, code := cli("key", "issue", "--tier", "trial", "--strict"); code == 0 || !strings.Contains(out, "not issued (strict)") {
		t.Fatalf("issue --strict: %d %q", code, out)
	}
	if out, code := cli("pool", "--tier", "trial"); code != 0 || !strings.Contains(out, "sold 8 keys (8 not bound yet), 7 free slots OVERSOLD") {
		t.Fatalf("pool: %d %q", code, out)
	}
	if out, code := cli("key", "show", stock[1][0]); code != 0 || !regexp.MustCompile(`(?m)^cost +\$0\.0000 last 5 h, \$0\.0000 last 24 h`).MatchString(out) {
		t.Fatalf("key show cost line: %d %q", code, out)
	}
	if out, code := cli("key", "issue", "--tier", "trial", "--count", "2"); code != 0 || strings.Count(out, "sk-cli-v1-") != 2 {
		t.Fatalf("issue --count: %d %q", code, out)
	}
	// A key's own budgets: at issue, then replaced with key budget; key
	// show marks them as the key's.
	out, code = cli("key", "issue", "--tier", "trial", "--budget-day-usd", "2.5")
	bid := regexp.MustCompile(`(?m)^id (k_[0-9a-f]+),`).FindStringSubmatch(out)
	if code != 0 || bid == nil {
		t.Fatalf("issue --budget-day-usd: %d %q", code, out)
	}
	if out, code := cli("key", "show", bid[1]); code != 0 || !regexp.MustCompile(`(?m)^budget day +\$0\.0000 of \$2\.50 spent, resets .* \(the key's own\)$`).MatchString(out) {
		t.Fatalf("show of a key with its own day budget: %d %q", code, out)
	}
	if out, code := cli("key", "budget", bid[1], "--week-usd", "9"); code != 0 || !strings.Contains(out, "budgets day the tier's, week $9.00") {
		t.Fatalf("key budget: %d %q", code, out)
	}
	if out, code := cli("key", "show", bid[1]); code != 0 || !regexp.MustCompile(`(?m)^budget week +\$0\.0000 of \$9\.00 spent.*\(the key's own\)$`).MatchString(out) || strings.Contains(out, "$2.50") {
		t.Fatalf("show after key budget: %d %q", code, out)
	}
	if out, code := cli("key", "budget", bid[1], "--day-usd", "-1"); code == 0 {
		t.Fatalf("a negative budget accepted: %q", out)
	}
	if out, code := cli("key", "extend", id, "--until", "2099-01-31"); code != 0 || !strings.Contains(out, "2099-01-31") {
		t.Fatalf("extend: %d %q", code, out)
	}
	if out, code := cli("key", "note", key, "acme", "corp"); code != 0 || !strings.Contains(out, "acme corp") || strings.Contains(out, key) {
		t.Fatalf("note: %d %q", code, out)
	}
	if out, code := cli("key", "move", id, "--tier", "high"); code != 0 || !strings.Contains(out, "tier high") {
		t.Fatalf("move: %d %q", code, out)
	}
	if out, code := cli("key", "show", id); code != 0 || !regexp.MustCompile(`(?m)^tier\s+high$`).MatchString(out) || !strings.Contains(out, "acme corp") || !strings.Contains(out, "usage last 5 h") {
		t.Fatalf("key show (readable): %d %q", code, out)
	}
	if out, code := cli("key", "list", "--status", "bogus"); code == 0 || !strings.Contains(out, "unknown status") {
		t.Fatalf("unknown status: %d %q", code, out)
	}
	for _, args := range [][]string{{"help"}, {"key", "move", "-h"}, {"account", "--help"}, {"pool", "-h"}} {
		if out, code := cli(args...); code != 0 || !strings.Contains(out, "key move KEY|ID --tier T") || !strings.Contains(out, "--json") {
			t.Fatalf("%v: %d %q", args, code, out)
		}
	}
	if out, code := cli("key", "renew", id); code == 0 || !strings.Contains(out, "never expire") {
		t.Fatalf("renew a high key: %d %q", code, out)
	}
	if out, code := cli("key", "extend", id); code != 2 {
		t.Fatalf("extend without --days/--until: %d %q", code, out)
	}

	var o bytes.Buffer
	err = cmdAccount(ctx, []string{"account", "add", "--tier", "trial", "--name", "t2"}, envOf(env),
		strings.NewReader(`{"apiKey":"sk-ant-api03-pasted-secret"}`), &o)
	if err != nil || strings.Contains(o.String(), "pasted-secret") || !strings.Contains(o.String(), "sha256:") {
		t.Fatalf("account add: %v %q", err, o.String())
	}
	if out, code := cli("account", "probe", "t2"); code != 1 || !strings.Contains(out, "t2: 401 authentication_error in ") || strings.Contains(out, "pasted-secret") {
		t.Fatalf("probe of a key the upstream rejects: %d %q", code, out)
	}
	if out, code := cli("account", "disable", "t2"); code != 0 || !strings.Contains(out, "t2 disabled") {
		t.Fatalf("disable: %d %q", code, out)
	}
	if out, _ := cli("pool", "--tier", "trial"); !strings.Contains(out, "disabled") {
		t.Fatalf("pool after disable: %q", out)
	}
	if out, code := cli("account", "show", "t2"); code != 0 || !strings.Contains(out, "disabled     true") {
		t.Fatalf("show: %d %q", code, out)
	}
	if out, code := cli("account", "enable", "t2"); code != 0 {
		t.Fatalf("enable: %d %q", code, out)
	}
	if out, code := cli("account", "delete", "t2"); code != 0 || !strings.Contains(out, ".trash") {
		t.Fatalf("delete: %d %q", code, out)
	}
	if out, code := cli("account", "show", "t2"); code == 0 {
		t.Fatalf("show after delete: %d %q", code, out)
	}
	for _, bad := range []string{"..", ".hidden", "a/b"} {
		if out, code := cli("account", "disable", bad); code != 2 || !strings.Contains(out, "letters, digits") {
			t.Fatalf("account disable %q: %d %q, want a usage error saying the rule", bad, code, out)
		}
	}
}

func TestSlotsLineNeverShowsMoreUsedThanTotal(t *testing.T) {
	cases := []struct {
		used, total int
		want        string
	}{
		{0, 0, "no slots in service"},
		{1, 0, "1 keys bound, no slots in service"},
		{3, 2, "3 keys bound, 2 slots in service (full)"},
		{1, 7, "1/7 used"},
	}
	for _, c := range cases {
		if got := slotsLine(c.used, c.total); got != c.want {
			t.Errorf("slotsLine(%d, %d) = %q, want %q", c.used, c.total, got, c.want)
		}
	}
}

// TestDemoDirKeepsFolders: demo --dir leaves its account and product
// folders behind and prints the fake upstream's URLs for a second serve.
func TestDemoDirKeepsFolders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithCancel(context.Background())
	out := &testenv.Buffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"demo", "--dir", dir}, envOf(map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}), out, io.Discard)
	}()
	re := regexp.MustCompile(`(?m)^  UPSTREAM_URL=(http://\S+)\n  OAUTH_TOKEN_URL=(http://\S+)$`)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "LISTEN_ADDR=127.0.0.1:8081") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("demo exit %d", code)
	}
	text := out.String()
	if !re.MatchString(text) || !strings.Contains(text, "go run ./cmd/claude-route pool") || !strings.Contains(text, "ACCOUNT_DIR="+filepath.Join(dir, "account")) {
		t.Fatalf("demo output: %q", text)
	}
	for _, sub := range []string{"account/trial/trial-api.json", "product/trial.journal.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, sub)); err != nil {
			t.Fatalf("%s not kept: %v", sub, err)
		}
	}
}
