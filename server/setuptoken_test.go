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
	planned, err := refreshStore{e.apps[0].Accounts}.OAuthAccounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range planned {
		if a.Name == "s1" {
			t.Fatal("a setup token is planned for refresh")
		}
	}
	if len(planned) != 1 || planned[0].Name != "o1" {
		t.Fatalf("planned %+v, want o1 only", planned)
	}
}
