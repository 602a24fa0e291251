package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/refresh"
)

// An account file that cannot be updated (here a link leading outside the
// account folder) keeps the refreshed tokens in the store only, says so
// once, and the file outside is never written.
func TestWriteBackOutsideTheFolderIsSaidOnce(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "o1.json")
	body := `{"claudeAiOauth":{"accessToken":"a","refreshToken":"r","expiresAt":1}}`
	if err := os.WriteFile(outside, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "high", "o1.json")
	_ = os.MkdirAll(filepath.Dir(link), 0o700)
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	st := accounts.NewStore(rdb)
	ctx := context.Background()
	if err := st.Put(ctx, accounts.Account{Name: "o1", Tier: "high", Kind: accounts.OAuth, AccessToken: "a", RefreshToken: "r", Path: link}); err != nil {
		t.Fatal(err)
	}
	var buf testenv.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	fw := &refreshFiles{s: st, root: dir, log: log}
	for i := range 3 {
		c := refresh.Creds{AccessToken: "a2", RefreshToken: "r" + string(rune('2'+i)), ExpiresAt: time.UnixMilli(5)}
		if err := fw.WriteBack(ctx, "o1", c); err != nil {
			t.Fatalf("write-back %d: %v", i, err)
		}
	}
	if n := strings.Count(buf.String(), "account file not updated"); n != 1 {
		t.Fatalf("said %d times, want once:\n%s", n, buf.String())
	}
	if b, _ := os.ReadFile(outside); string(b) != body {
		t.Fatalf("file outside the account folder written: %s", b)
	}
}
