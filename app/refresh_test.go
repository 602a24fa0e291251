package app

import (
	"testing"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/testenv"
)

// The refresher plans the OAuth accounts that can be refreshed: not an
// API-key account, not a setup token (no refresh token to use).
func TestRefreshPlansOAuthAccountsWithARefreshToken(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	st := accounts.NewStore(rdb)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for _, a := range []accounts.Account{
		{Name: "o1", Tier: "high", Kind: accounts.OAuth, AccessToken: "a", RefreshToken: "r", ExpiresAt: exp},
		{Name: "s1", Tier: "high", Kind: accounts.OAuth, AccessToken: "setup", ExpiresAt: exp},
		{Name: "k1", Tier: "high", Kind: accounts.APIKey, APIKey: "sk"},
	} {
		if err := st.Put(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	planned, err := refreshStore{st}.OAuthAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(planned) != 1 || planned[0].Name != "o1" || planned[0].Tier != "high" || !planned[0].ExpiresAt.Equal(exp) {
		t.Fatalf("planned %+v, want o1 (high, %s) only", planned, exp)
	}
}
