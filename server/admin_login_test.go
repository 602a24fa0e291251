package server

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/app"
)

// `account login` against the fake: a good code writes ACCOUNT_DIR/T/N.json
// (0600, the credentials format) and the account serves at once; a bad
// code, a state mismatch and a reused code are refused with a clear
// message and write nothing.
func TestAccountLoginFlow(t *testing.T) {
	e := newEnv(t)
	e.tweaks = append(e.tweaks, func(c *app.Config) { c.Login.AuthorizeURL = e.fake.AuthorizeURL() })
	e.start()
	type started struct {
		Login        string `json:"login"`
		AuthorizeURL string `json:"authorize_url"`
	}
	start := func(name string) started {
		t.Helper()
		var st started
		if code := e.admin(http.MethodPost, "/admin/api/account-logins", map[string]string{"tier": "high", "name": name}, &st); code != 201 || st.Login == "" {
			t.Fatalf("start: %d %+v", code, st)
		}
		return st
	}
	signIn := func(u string) string {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`<code id="code">([^<]+)</code>`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("sign-in page: %s", b)
		}
		return string(m[1])
	}
	finish := func(id, code string) (int, string) {
		t.Helper()
		var out struct {
			Account AccountDetail
			Error   struct{ Message string }
		}
		st := e.admin(http.MethodPost, "/admin/api/account-logins/finish", map[string]string{"login": id, "code": code}, &out)
		return st, out.Error.Message
	}
	path := filepath.Join(e.acctDir, "high", "o1.json")

	st := start("o1")
	pasted := signIn(st.AuthorizeURL)
	code, _, _ := strings.Cut(pasted, "#")
	for _, c := range []struct{ name, code, want string }{
		{"bad code", "wrong#" + st.Login, "refused"},
		{"state mismatch", code + "#someone-else", "state mismatch"},
		{"no state", code, "CODE#STATE"},
	} {
		if status, msg := finish(st.Login, c.code); status != 400 || !strings.Contains(msg, c.want) || !strings.Contains(msg, "nothing was written") {
			t.Fatalf("%s: %d %q", c.name, status, msg)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("%s wrote the file (%v)", c.name, err)
		}
	}
	if status, msg := finish(st.Login, pasted); status != 201 {
		t.Fatalf("good code: %d %q", status, msg)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(path)
	a, err := accounts.Parse(b)
	if err != nil || a.Kind != accounts.OAuth || a.RefreshToken == "" || a.ExpiresAt.IsZero() || !e.fake.AccessValid(a.AccessToken) {
		t.Fatalf("written file does not load as a working OAuth account: %v", err)
	}
	if !hasAccount(e.accountViews(), "o1") {
		t.Fatal("the new account is not in the pool")
	}
	if status, msg := finish(st.Login, pasted); status != 400 || !strings.Contains(msg, "no login in progress") {
		t.Fatalf("reused code: %d %q", status, msg)
	}
	// A name in use is refused before anyone signs in.
	if code := e.admin(http.MethodPost, "/admin/api/account-logins", map[string]string{"tier": "high", "name": "o1"}, nil); code != http.StatusConflict {
		t.Fatalf("login for a name in use: %d, want 409", code)
	}
	if code := e.admin(http.MethodPost, "/admin/api/account-logins", map[string]string{"tier": "high", "name": ".."}, nil); code != http.StatusBadRequest {
		t.Fatalf("login for a bad name: %d, want 400", code)
	}
}
