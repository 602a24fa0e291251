package accounts

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, in string
		kind     Kind
		urls     int
		wantErr  string
	}{
		{"oauth", `{"claudeAiOauth":{"accessToken":"sk-ant-oat01-a","refreshToken":"sk-ant-ort01-b","expiresAt":1767225600000,"scopes":["user:inference"],"subscriptionType":"max"}}`, OAuth, 0, ""},
		{"apikey", `{"apiKey":"sk-ant-api03-x"}`, APIKey, 0, ""},
		{"apikey baseURL", `{"apiKey":"k","baseURL":"https://relay.example/"}`, APIKey, 1, ""},
		{"oauth baseURLs", `{"claudeAiOauth":{"accessToken":"a"},"baseURLs":["http://a:1","http://b:2"]}`, OAuth, 2, ""},
		{"both", `{"apiKey":"k","claudeAiOauth":{"accessToken":"a"}}`, "", 0, "both"},
		{"neither", `{"foo":1}`, "", 0, "neither"},
		{"empty oauth", `{"claudeAiOauth":{}}`, "", 0, "accessToken"},
		{"not json", `{"apiKey":`, "", 0, "invalid JSON"},
		{"bad url", `{"apiKey":"k","baseURL":"ftp://x"}`, "", 0, "baseURL"},
		{"negative expiry", `{"claudeAiOauth":{"accessToken":"a","expiresAt":-5}}`, "", 0, "negative"},
		{"max_concurrency", `{"apiKey":"k","max_concurrency":3}`, APIKey, 0, ""},
		{"negative max_concurrency", `{"apiKey":"k","max_concurrency":-1}`, "", 0, "max_concurrency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := Parse([]byte(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrBadFile) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Kind != c.kind || len(a.BaseURLs) != c.urls {
				t.Fatalf("got %+v", a)
			}
		})
	}
	a, _ := Parse([]byte(`{"claudeAiOauth":{"accessToken":"sk-ant-oat01-secret","refreshToken":"sk-ant-ort01-secret","expiresAt":1767225600000}}`))
	if !a.ExpiresAt.Equal(time.UnixMilli(1767225600000)) {
		t.Errorf("expiresAt is in ms: %v", a.ExpiresAt)
	}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%+v", a), fmt.Sprintf("%#v", a)} {
		if strings.Contains(s, "secret") {
			t.Errorf("formatting leaks a token: %s", s)
		}
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDirSkipsBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "trial", "a1.json"), `{"apiKey":"k1"}`)
	writeFile(t, filepath.Join(dir, "trial", "sub", "a2.json"), `{"claudeAiOauth":{"accessToken":"x","refreshToken":"y","expiresAt":1}}`)
	writeFile(t, filepath.Join(dir, "high", "broken.json"), `{"apiKey":`)
	writeFile(t, filepath.Join(dir, "nosuchtier", "a3.json"), `{"apiKey":"k"}`)
	writeFile(t, filepath.Join(dir, "high", "a1.json"), `{"apiKey":"dup"}`)
	writeFile(t, filepath.Join(dir, "loose.json"), `{"apiKey":"k"}`)
	writeFile(t, filepath.Join(dir, "trial", "notes.txt"), `ignored`)
	known := func(t string) bool { return t == "trial" || t == "high" }
	accts, bad := LoadDir(dir, known)
	if len(accts) != 2 || accts[0].Name != "a1" || accts[0].Tier != "high" && accts[0].Tier != "trial" || accts[1].Name != "a2" || accts[1].Tier != "trial" {
		t.Fatalf("accounts: %v", accts)
	}
	if len(bad) != 4 {
		t.Fatalf("want 4 skipped files (broken, unknown tier, duplicate, loose), got %v", bad)
	}
	for _, b := range bad {
		if b.Path == "" {
			t.Errorf("a skipped file must name its path: %v", b)
		}
	}
}

func TestWriteBackKeepsUnknownFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "acc.json")
	writeFile(t, path, `{
  "claudeAiOauth": {"accessToken":"old-a","refreshToken":"old-r","expiresAt":1,"scopes":["user:inference","user:profile"],"subscriptionType":"max","rateLimitTier":"default_claude_max_20x"},
  "baseURL": "http://127.0.0.1:9",
  "note": "keep me"
}`)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	exp := time.UnixMilli(1900000000000)
	if err := WriteBack(filepath.Dir(path), path, "new-a", "new-r", exp); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "\n") || strings.Contains(string(b), "  ") {
		t.Errorf("want minified JSON, got %s", b)
	}
	var doc struct {
		O struct {
			AccessToken, RefreshToken, SubscriptionType, RateLimitTier string
			ExpiresAt                                                  int64
			Scopes                                                     []string
		} `json:"claudeAiOauth"`
		BaseURL, Note string
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.O.AccessToken != "new-a" || doc.O.RefreshToken != "new-r" || doc.O.ExpiresAt != exp.UnixMilli() {
		t.Errorf("tokens not written: %s", b)
	}
	if doc.O.SubscriptionType != "max" || doc.O.RateLimitTier == "" || len(doc.O.Scopes) != 2 || doc.Note != "keep me" || doc.BaseURL == "" {
		t.Errorf("unknown fields lost: %s", b)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"claudeAiOauth":{"accessToken":"a","refreshToken":"b","expiresAt":1767225600000}}`))
	f.Add([]byte(`{"apiKey":"k","baseURLs":["http://x:1"]}`))
	f.Add([]byte(`{"claudeAiOauth":null,"apiKey":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrBadFile) {
				t.Fatalf("error not wrapped: %v", err)
			}
			return
		}
		if a.Kind != OAuth && a.Kind != APIKey {
			t.Fatalf("accepted without a kind: %+v", a)
		}
		if a.Credential() == "" && a.RefreshToken == "" {
			t.Fatalf("accepted without any credential")
		}
	})
}
