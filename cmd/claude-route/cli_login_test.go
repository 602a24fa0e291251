package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

// `account login` as an operator runs it: the URL is printed, a wrong
// paste is refused and may be retried, the right one writes the account.
func TestAccountLoginCommand(t *testing.T) {
	redisURL := testenv.RedisURL(t, 8)
	fake := fakeupstream.Start(fakeupstream.Options{})
	defer fake.Close()
	acct, prod := t.TempDir(), t.TempDir()
	env := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "REDIS_URL": redisURL, "ACCOUNT_DIR": acct, "PRODUCT_DIR": prod,
		"UPSTREAM_URL": fake.URL(), "ADMIN_TOKEN": "op-token-0123456789",
		"OAUTH_TOKEN_URL": fake.TokenURL(), "OAUTH_AUTHORIZE_URL": fake.AuthorizeURL(),
	}
	_ = os.MkdirAll(filepath.Join(acct, "high"), 0o700)
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

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	res := make(chan error, 1)
	go func() {
		err := cmdAccount(ctx, []string{"account", "login", "--tier", "high", "--name", "o1"}, envOf(env), inR, outW)
		outW.Close()
		res <- err
	}()
	rd := bufio.NewReader(outR)
	var printed strings.Builder
	readUntil := func(marker string) string {
		t.Helper()
		var seen strings.Builder
		for !strings.Contains(seen.String(), marker) {
			b, err := rd.ReadByte()
			if err != nil {
				t.Fatalf("output ended before %q: %s", marker, printed.String()+seen.String())
			}
			seen.WriteByte(b)
		}
		printed.WriteString(seen.String())
		return seen.String()
	}
	u := regexp.MustCompile(`http://\S+/oauth/authorize\S+`).FindString(readUntil("code: "))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pasted := regexp.MustCompile(`<code id="code">([^<]+)</code>`).FindSubmatch(page)
	if pasted == nil {
		t.Fatalf("sign-in page: %s", page)
	}
	_, _ = io.WriteString(inW, "wrong#"+strings.SplitN(string(pasted[1]), "#", 2)[1]+"\n")
	if got := readUntil("code: "); !strings.Contains(got, "refused") || !strings.Contains(got, "Paste the code again") {
		t.Fatalf("wrong code: %q", got)
	}
	if _, err := os.Stat(filepath.Join(acct, "high", "o1.json")); !os.IsNotExist(err) {
		t.Fatal("a refused code wrote the account file")
	}
	_, _ = io.WriteString(inW, string(pasted[1])+"\n")
	rest, _ := io.ReadAll(rd)
	if err := <-res; err != nil || !strings.Contains(string(rest), "o1") || !strings.Contains(string(rest), "oauth") {
		t.Fatalf("login: %v %q", err, rest)
	}
	if fi, err := os.Stat(filepath.Join(acct, "high", "o1.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("account file: %v %v", fi, err)
	}
}
