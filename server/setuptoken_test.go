package server

import (
	"net/http"
	"testing"
	"time"
)

// A setup token (an OAuth access token with no refresh token) serves as an
// OAuth account, shows as a setup token, and gets no refresh timer.
func TestSetupTokenAccount(t *testing.T) {
	e := newEnv(t)
	token := "sk-ant-oat01-setup-token-secret"
	exp := time.Now().Add(300 * 24 * time.Hour)
	e.fake.AddOAuth(token, "", exp)
	e.writeAccount("high", "s1", map[string]any{"claudeAiOauth": map[string]any{"accessToken": token, "expiresAt": exp.UnixMilli()}})
	e.oauthAccount("high", "o1", time.Now().Add(8*time.Hour))
	e.start()
	var out struct{ Account AccountDetail }
	if st := e.admin(http.MethodGet, "/admin/api/accounts/s1", nil, &out); st != 200 || !out.Account.SetupToken || out.Account.Kind != "oauth" {
		t.Fatalf("show: %d %+v", st, out.Account)
	}
	// The refresher plans o1 (its Run plans at start) and never s1.
	r := e.apps[0].Refresher
	for i := 0; i < 500; i++ {
		if _, ok := r.Planned("o1"); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := r.Planned("o1"); !ok {
		t.Fatal("the OAuth account o1 has no refresh timer")
	}
	if _, ok := r.Planned("s1"); ok {
		t.Fatal("a setup token is planned for refresh")
	}
}
