package server

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The admin's account verbs find what the sync serves: an account in a
// symlinked tier folder is shown, disabled through the link (which stays a
// link) and never added a second time.
func TestAccountVerbsOnSymlinkedFolder(t *testing.T) {
	e := newEnv(t)
	e.writeAccount(".shared/high", "h1", map[string]any{"apiKey": e.apiAccount("trial", "t0")})
	if err := os.Symlink(".shared/high", filepath.Join(e.acctDir, "high")); err != nil {
		t.Fatal(err)
	}
	e.start()
	if !hasAccount(e.accountViews(), "h1") {
		t.Fatal("the sync does not serve the linked folder")
	}
	if st := e.admin(http.MethodGet, "/admin/api/accounts/h1", nil, nil); st != 200 {
		t.Fatalf("show: %d, want 200", st)
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts?tier=high&name=h1", map[string]any{"apiKey": "sk-ant-api03-dup"}, nil); st != http.StatusConflict {
		t.Fatalf("add of a served name: %d, want 409", st)
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/h1/disable", nil, nil); st != 200 {
		t.Fatalf("disable: %d, want 200", st)
	}
	if fi, err := os.Lstat(filepath.Join(e.acctDir, "high")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced (%v)", err)
	}
	if v := accountByName(e.accountViews(), "h1"); v == nil || v.Blacklist == nil || v.Blacklist.Reason != "disabled" {
		t.Fatalf("after disable: %+v", v)
	}
	if dup, _ := filepath.Glob(filepath.Join(e.acctDir, "high", "*.json")); len(dup) != 1 {
		t.Fatalf("files in the linked folder: %v", dup)
	}
}

// Account names follow one rule wherever they are accepted; the API says
// it with a 400 and writes nothing.
func TestAccountNamesRule(t *testing.T) {
	e := newEnv(t)
	e.start()
	for _, name := range []string{"..", "...", ".hidden", "-dash", "a b", strings.Repeat("a", 65)} {
		var out struct{ Error struct{ Message string } }
		st := e.admin(http.MethodPost, "/admin/api/accounts?tier=trial&name="+url.QueryEscape(name), map[string]any{"apiKey": "sk-ant-api03-x"}, &out)
		if st != http.StatusBadRequest || !strings.Contains(out.Error.Message, "letters, digits") {
			t.Fatalf("name %q: %d %q, want 400 saying the rule", name, st, out.Error.Message)
		}
	}
	for _, path := range []string{"/admin/api/accounts/.hidden/disable", "/admin/api/accounts/..x/probe", "/admin/api/accounts/-a/recover"} {
		var out struct{ Error struct{ Message string } }
		if st := e.admin(http.MethodPost, path, nil, &out); st != http.StatusBadRequest || !strings.Contains(out.Error.Message, "letters, digits") {
			t.Fatalf("%s: %d %q, want 400 saying the rule", path, st, out.Error.Message)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.acctDir, "trial")); len(ents) != 0 {
		t.Fatalf("files written: %v", ents)
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts?tier=trial&name=ok.name-1_x", map[string]any{"apiKey": "sk-ant-api03-x"}, nil); st != http.StatusCreated {
		t.Fatalf("a good name: %d", st)
	}
}
