package accounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The admin verbs find what the loader serves: accounts in a symlinked tier
// folder (a Kubernetes Secret mounted on the account folder, or a folder
// kept elsewhere inside ACCOUNT_DIR) are found, not duplicated, and their
// writes go through the links into the real files, leaving the links.
func TestVerbsFollowSymlinkedFolders(t *testing.T) {
	const ts = "..2025_06_01_12_00_00.987654321"
	layouts := []struct {
		name  string
		build func(t *testing.T, dir string)
		real  string // o1's real file, relative to dir
		links []string
	}{
		{"kubernetes secret on the account folder", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, ts, "high", "o1.json"), oauthBody)
			symlink(t, ts, filepath.Join(dir, "..data"))
			symlink(t, "..data/high", filepath.Join(dir, "high"))
		}, ts + "/high/o1.json", []string{"high", "..data"}},
		{"tier folder linked to a hidden folder", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, ".shared", "high", "o1.json"), oauthBody)
			symlink(t, ".shared/high", filepath.Join(dir, "high"))
		}, ".shared/high/o1.json", []string{"high"}},
		{"account file linked", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, ".store", "o1.json"), oauthBody)
			symlink(t, "../.store/o1.json", filepath.Join(dir, "high", "o1.json"))
		}, ".store/o1.json", []string{"high/o1.json"}},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			dir := t.TempDir()
			l.build(t, dir)
			loaded, bad := LoadDir(dir, func(string) bool { return true })
			if len(loaded) != 1 || len(bad) != 0 {
				t.Fatalf("LoadDir = %v, %v", loaded, bad)
			}
			path, err := FindFile(dir, "o1")
			if err != nil || path != loaded[0].Path {
				t.Fatalf("FindFile = %q, %v; the loader serves %q", path, err, loaded[0].Path)
			}
			if _, err := AddFile(dir, "high", "o1", []byte(`{"apiKey":"dup"}`)); !errors.Is(err, ErrExists) {
				t.Fatalf("add of a served name: %v, want ErrExists", err)
			}
			if _, err := SetFileDisabled(dir, "o1", true); err != nil {
				t.Fatal(err)
			}
			if _, err := ReplaceFile(dir, "o1", []byte(`{"claudeAiOauth":{"accessToken":"a2","refreshToken":"r2","expiresAt":5}}`)); err != nil {
				t.Fatal(err)
			}
			for _, link := range l.links {
				if fi, err := os.Lstat(filepath.Join(dir, link)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
					t.Fatalf("%s is no longer a link (%v)", link, err)
				}
			}
			b, _ := os.ReadFile(filepath.Join(dir, l.real))
			if a, err := Parse(b); err != nil || !a.Disabled || a.RefreshToken != "r2" {
				t.Fatalf("real file after disable and replace: %s", b)
			}
			again, bad := LoadDir(dir, func(string) bool { return true })
			if len(again) != 1 || len(bad) != 0 || !again[0].Disabled {
				t.Fatalf("after the verbs: %v, %v", again, bad)
			}
		})
	}
}

// A link whose target lies outside ACCOUNT_DIR is never written by a verb:
// the operator gets ErrNotWritable and the target is untouched.
func TestVerbsRefuseLinksOutside(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "o2.json")
	writeFile(t, outside, oauthBody)
	symlink(t, outside, filepath.Join(dir, "high", "o2.json"))
	for verb, do := range map[string]func() error{
		"disable": func() error { _, err := SetFileDisabled(dir, "o2", true); return err },
		"replace": func() error { _, err := ReplaceFile(dir, "o2", []byte(`{"apiKey":"k"}`)); return err },
	} {
		err := do()
		if !errors.Is(err, ErrNotWritable) || !strings.Contains(err.Error(), "outside the account folder") {
			t.Fatalf("%s: err = %v, want ErrNotWritable naming the cause", verb, err)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != oauthBody {
		t.Fatalf("a file outside the account folder was written: %s", b)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "high", "o2.json")); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the link was replaced")
	}
	// A tier folder linked outside is refused for a new account too.
	other := t.TempDir()
	symlink(t, other, filepath.Join(dir, "trial"))
	if _, err := AddFile(dir, "trial", "t1", []byte(`{"apiKey":"k"}`)); !errors.Is(err, ErrNotWritable) {
		t.Fatalf("add into a folder linked outside: %v, want ErrNotWritable", err)
	}
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Fatalf("written outside: %v", ents)
	}
}

// The refresher's write-back and the operator's disable/enable share one
// lock: each reads the file and writes it back as one step, so the newest
// rotated refresh token is the one the file ends with, whatever the
// interleaving. Without the lock a disable that read the file before a
// write-back puts the old (already rotated, dead) refresh token back.
func TestWriteBackRacingDisableKeepsNewToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "high", "o1.json")
	writeFile(t, path, oauthBody)
	const rounds = 300
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range rounds {
			if _, err := SetFileDisabled(dir, "o1", i%2 == 0); err != nil {
				errs <- err
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range rounds {
			// What the file holds now must be the token written last:
			// a disable that ran meanwhile kept it.
			if i > 0 {
				b, _ := os.ReadFile(path)
				if a, err := Parse(b); err != nil || a.RefreshToken != fmt.Sprintf("r%d", i-1) {
					errs <- fmt.Errorf("after writing r%d the file holds %q (%v)", i-1, a.RefreshToken, err)
					return
				}
			}
			if err := WriteBack(dir, path, fmt.Sprintf("a%d", i), fmt.Sprintf("r%d", i), time.UnixMilli(int64(i))); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	a, err := Parse(b)
	if want := fmt.Sprintf("r%d", rounds-1); err != nil || a.RefreshToken != want || a.Disabled {
		t.Fatalf("file ends with refresh token %q, disabled %v (%v); want %s, enabled", a.RefreshToken, a.Disabled, err, want)
	}
}

// Account names: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. The sync reports a file
// with another name instead of loading it.
func TestAccountNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"o1": true, "A.b-c_9": true, strings.Repeat("a", 64): true,
		"": false, ".": false, "..": false, "...": false, ".hidden": false, "-x": false, "_x": false,
		"a b": false, "a/b": false, "é": false, strings.Repeat("a", 65): false,
	} {
		if ValidName(name) != ok {
			t.Errorf("ValidName(%q) = %v", name, !ok)
		}
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "high", "-x.json"), `{"apiKey":"k"}`)
	writeFile(t, filepath.Join(dir, "high", "ok.json"), `{"apiKey":"k"}`)
	loaded, bad := LoadDir(dir, func(string) bool { return true })
	if len(loaded) != 1 || len(bad) != 1 || !strings.Contains(bad[0].Error(), "letters, digits") {
		t.Fatalf("LoadDir = %v, %v", loaded, bad)
	}
}

// The first account of a new install creates the folder, as before the
// folder lock existed.
func TestAddFileCreatesTheFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "account")
	if _, err := AddFile(dir, "trial", "t1", []byte(`{"apiKey":"k"}`)); err != nil {
		t.Fatal(err)
	}
	if loaded, _ := LoadDir(dir, func(string) bool { return true }); len(loaded) != 1 {
		t.Fatalf("loaded %v", loaded)
	}
}
