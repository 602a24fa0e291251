package refresh

import (
	"context"
	"testing"
	"time"
)

// A store that answers a call late under load (past the client's read
// timeout) must not cost the refreshed tokens: the used refresh token is
// dead, so they must reach both the store and the account file. Before
// the retries, a write-back whose store lookup timed out was dropped (the
// server's TestNoSecretLeaks failed under load with "the session should
// have refreshed the token"), and a swap applied with its reply lost was
// taken on the retry for someone else's change, again with no write-back.
func TestRefreshKeepsTokensThroughLateStoreReplies(t *testing.T) {
	tests := []struct {
		name             string
		lostSwapReplies  int
		failedWriteBacks int
	}{
		{name: "the file's write-back fails once", failedWriteBacks: 1},
		{name: "the file's write-back fails twice", failedWriteBacks: 2},
		{name: "the swap is applied but its reply is lost", lostSwapReplies: 1},
		{name: "both", lostSwapReplies: 2, failedWriteBacks: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := fakeEnv(t)
			old := e.addAccount("acct", t0.Add(-time.Second))
			e.st.lostReplies = tc.lostSwapReplies
			e.fw.fails = tc.failedWriteBacks
			r := e.refresher(e.config())

			got, err := r.RefreshNow(context.Background(), "acct", old.AccessToken)
			if err != nil {
				t.Fatalf("RefreshNow: %v", err)
			}
			now := e.assertRefreshed("acct", old)
			if !sameCreds(got, now) {
				t.Fatalf("RefreshNow answered other credentials than the store's new ones")
			}
			w := e.fw.all()
			if len(w) != 1 || !sameCreds(w[0].c, now) {
				t.Fatalf("file write-backs: %d, want one with the new tokens", len(w))
			}
			if n := e.up.TokenCalls(); n != 1 {
				t.Fatalf("token calls = %d, want 1", n)
			}
		})
	}
}
