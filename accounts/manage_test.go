package accounts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
)

func TestAccountFileVerbs(t *testing.T) {
	dir := t.TempDir()
	body := []byte(`{"apiKey":"sk-ant-api03-secret-one"}`)
	a, err := AddFile(dir, "trial", "t1", body)
	if err != nil || a.Kind != APIKey || a.Path != filepath.Join(dir, "trial", "t1.json") {
		t.Fatalf("AddFile = %v, %v", a, err)
	}
	if st, err := os.Stat(a.Path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v, %v; want 0600", st, err)
	}
	// Names are unique across tiers.
	if _, err := AddFile(dir, "high", "t1", body); !errors.Is(err, ErrExists) {
		t.Fatalf("same name in another tier: %v, want ErrExists", err)
	}
	for _, bad := range []string{`{"apiKey":`, `{}`, `{"apiKey":"x","claudeAiOauth":{"accessToken":"y"}}`} {
		_, err := AddFile(dir, "trial", "t9", []byte(bad))
		if !errors.Is(err, ErrBadFile) {
			t.Fatalf("AddFile(%s): %v, want ErrBadFile", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Fatalf("error echoes the body: %v", err)
		}
	}
	if _, err := AddFile(dir, "trial", "../evil", body); !errors.Is(err, ErrBadName) {
		t.Fatalf("path in the name: %v", err)
	}

	// Disable keeps every other field; Parse sees the flag.
	if _, err := SetFileDisabled(dir, "t1", true); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(a.Path)
	got, err := Parse(b)
	if err != nil || !got.Disabled || got.APIKey != "sk-ant-api03-secret-one" {
		t.Fatalf("after disable: %s → %v, %v", b, got, err)
	}
	// Replacing the credentials keeps the account disabled.
	r, err := ReplaceFile(dir, "t1", []byte(`{"apiKey":"sk-ant-api03-secret-two"}`))
	if err != nil || !r.Disabled || r.APIKey != "sk-ant-api03-secret-two" {
		t.Fatalf("ReplaceFile = %v, %v", r, err)
	}
	if _, err := SetFileDisabled(dir, "t1", false); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(a.Path)
	if strings.Contains(string(b), "disabled") {
		t.Fatalf("enable left the flag: %s", b)
	}
	if s1, s2 := Summarize(got), Summarize(r); s1.Fingerprint == s2.Fingerprint || strings.Contains(s1.Fingerprint, "secret") {
		t.Fatalf("fingerprints %q %q: want distinct and secret-free", s1.Fingerprint, s2.Fingerprint)
	}

	// Delete moves the file to the trash, where LoadDir never finds it.
	dst, err := TrashFile(dir, "t1", t0)
	if err != nil || !strings.HasPrefix(dst, filepath.Join(dir, TrashDir)) {
		t.Fatalf("TrashFile = %s, %v", dst, err)
	}
	loaded, _ := LoadDir(dir, func(string) bool { return true })
	if len(loaded) != 0 {
		t.Fatalf("a trashed account still loads: %v", loaded)
	}
	if _, err := FindFile(dir, "t1"); !errors.Is(err, ErrNoSuchFile) {
		t.Fatalf("FindFile after delete: %v", err)
	}
	// The name is free again.
	if _, err := AddFile(dir, "high", "t1", body); err != nil {
		t.Fatalf("re-add after delete: %v", err)
	}
}

// TestSetDisabledRealRedis: disabling overrides another reason, enabling
// ends only a "disabled" entry, and concurrent toggles leave one entry.
func TestSetDisabledRealRedis(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	p, _ := newPool(t, rdb)
	ctx := context.Background()
	addAccounts(t, p, "trial", "a", "b")
	if ch, err := p.SetDisabled(ctx, "a", true); err != nil || !ch {
		t.Fatalf("disable: %v, %v", ch, err)
	}
	if ch, _ := p.SetDisabled(ctx, "a", true); ch {
		t.Fatal("disabling twice changed something")
	}
	if _, err := p.BindTo(ctx, "k1", "trial", 7, "a"); !errors.Is(err, ErrBlacklisted) {
		t.Fatalf("a disabled account took a key: %v", err)
	}
	if ch, err := p.SetDisabled(ctx, "a", false); err != nil || !ch {
		t.Fatalf("enable: %v, %v", ch, err)
	}
	// Another reason is not ended by enable.
	if err := p.Blacklist(ctx, "b", "invalid_grant"); err != nil {
		t.Fatal(err)
	}
	if ch, _ := p.SetDisabled(ctx, "b", false); ch {
		t.Fatal("enable removed a blacklist entry it did not make")
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = p.SetDisabled(ctx, "a", i%2 == 0)
		}()
	}
	wg.Wait()
	if _, err := p.SetDisabled(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	view, err := p.View(ctx, []string{"trial"}, func(string) int { return 7 })
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range view["trial"] {
		want := map[string]string{"a": DisabledReason, "b": "invalid_grant"}[v.Name]
		if v.Blacklist == nil || v.Blacklist.Reason != want {
			t.Fatalf("%s: blacklist %+v, want reason %s", v.Name, v.Blacklist, want)
		}
	}
}

// TestRecoverRefusesDisabled: recover must not undo a disable (only enable,
// through the file, does); the entry stays and the error says what to use.
func TestRecoverRefusesDisabled(t *testing.T) {
	rdb := testenv.Redis(t, 2)
	p, _ := newPool(t, rdb)
	ctx := context.Background()
	addAccounts(t, p, "trial", "a", "b")
	if _, err := p.SetDisabled(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	was, err := p.Recover(ctx, "a")
	if !errors.Is(err, ErrDisabled) || was {
		t.Fatalf("recover of a disabled account: %v, %v; want ErrDisabled", was, err)
	}
	if _, err := p.BindTo(ctx, "k1", "trial", 7, "a"); !errors.Is(err, ErrBlacklisted) {
		t.Fatalf("after a refused recover the account took a key: %v", err)
	}
	if err := p.Blacklist(ctx, "b", "invalid bearer token"); err != nil {
		t.Fatal(err)
	}
	if was, err := p.Recover(ctx, "b"); err != nil || !was {
		t.Fatalf("recover of a blacklisted account: %v, %v", was, err)
	}
}
