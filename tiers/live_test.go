package tiers

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLiveReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiers.json")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"tiers":[{"name":"gold","slots":2,"quotas":{"sonnet":5}}]}`)
	first, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLive(first, path)
	quota := func() int {
		tr, ok := l.Get("gold")
		if !ok {
			t.Fatal("gold missing")
		}
		q, _ := tr.Quota("sonnet")
		return q
	}
	if changed, err := l.Reload(); changed || err != nil {
		t.Fatalf("unchanged file: changed %v, err %v", changed, err)
	}
	write(`{"tiers":[{"name":"gold","slots":2,"quotas":{"sonnet":9}},{"name":"silver","slots":4}]}`)
	if changed, err := l.Reload(); !changed || err != nil {
		t.Fatalf("new file: changed %v, err %v", changed, err)
	}
	if quota() != 9 || strings.Join(l.Names(), ",") != "gold,silver" {
		t.Fatalf("after reload: quota %d, tiers %v", quota(), l.Names())
	}
	for _, bad := range []string{`{"tiers":[{"name":"gold","slots":0}]}`, `{not json`} {
		write(bad)
		if changed, err := l.Reload(); changed || err == nil || !strings.Contains(err.Error(), "previous table stays") {
			t.Fatalf("bad file %s: changed %v, err %v", bad, changed, err)
		}
		if quota() != 9 {
			t.Fatalf("a bad file replaced the table: quota %d", quota())
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reload(); err == nil || quota() != 9 {
		t.Fatalf("missing file: err %v, quota %d", err, quota())
	}
	if changed, err := NewLive(Builtin(), "").Reload(); changed || err != nil {
		t.Fatalf("built-in table: changed %v, err %v", changed, err)
	}
}

// Readers and a reload at once: each reader sees one whole table (run
// with -race).
func TestLiveReloadWhileRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiers.json")
	l := NewLive(Builtin(), path)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if tr, ok := l.Load().Get("trial"); ok && tr.Slots != 7 && tr.Slots != 3 {
					t.Errorf("trial slots %d", tr.Slots)
				}
			}
		}()
		if i == 1 {
			_ = os.WriteFile(path, []byte(`{"tiers":[{"name":"trial","slots":3}]}`), 0o600)
			if _, err := l.Reload(); err != nil {
				t.Error(err)
			}
		}
	}
	wg.Wait()
}
