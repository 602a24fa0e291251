package accounts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

const oauthBody = `{"claudeAiOauth":{"accessToken":"old-a","refreshToken":"old-r","expiresAt":1}}`

// Kubernetes mounts a Secret as a timestamped folder, "..data" linking to
// it, and each visible name linking through "..data". Each account must be
// loaded once, from its visible name, and a refresh must reach the real
// file without cutting the links.
func TestLoadDirHiddenAndKubernetesLayouts(t *testing.T) {
	known := func(t string) bool { return t == "high" || t == "trial" }
	cases := []struct {
		name  string
		build func(t *testing.T, dir string)
		want  map[string]string // account → path relative to dir
		real  map[string]string // account → the file a write-back must change
	}{
		{"backup folder does not shadow", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "high", ".backup", "o1.json"), `{"apiKey":"stale"}`)
			writeFile(t, filepath.Join(dir, "high", ".o2.json"), `{"apiKey":"hidden"}`)
			writeFile(t, filepath.Join(dir, "high", "o1.json"), oauthBody)
			writeFile(t, filepath.Join(dir, ".trash", "trial", "x.json"), `{"apiKey":"gone"}`)
		}, map[string]string{"o1": "high/o1.json"}, map[string]string{"o1": "high/o1.json"}},
		{"secret mounted on a tier folder", func(t *testing.T, dir string) {
			ts := "..2025_06_01_12_00_00.123456789"
			writeFile(t, filepath.Join(dir, "high", ts, "o1.json"), oauthBody)
			writeFile(t, filepath.Join(dir, "high", ts, "o2.json"), `{"apiKey":"k2"}`)
			symlink(t, ts, filepath.Join(dir, "high", "..data"))
			symlink(t, "..data/o1.json", filepath.Join(dir, "high", "o1.json"))
			symlink(t, "..data/o2.json", filepath.Join(dir, "high", "o2.json"))
		}, map[string]string{"o1": "high/o1.json", "o2": "high/o2.json"},
			map[string]string{"o1": "high/..2025_06_01_12_00_00.123456789/o1.json"}},
		{"secret mounted on the account folder", func(t *testing.T, dir string) {
			ts := "..2025_06_01_12_00_00.987654321"
			writeFile(t, filepath.Join(dir, ts, "high", "o1.json"), oauthBody)
			writeFile(t, filepath.Join(dir, ts, "trial", "t1.json"), `{"apiKey":"k"}`)
			symlink(t, ts, filepath.Join(dir, "..data"))
			symlink(t, "..data/high", filepath.Join(dir, "high"))
			symlink(t, "..data/trial", filepath.Join(dir, "trial"))
		}, map[string]string{"o1": "high/o1.json", "t1": "trial/t1.json"},
			map[string]string{"o1": "..2025_06_01_12_00_00.987654321/high/o1.json"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.build(t, dir)
			accts, bad := LoadDir(dir, known)
			if len(bad) != 0 {
				t.Fatalf("skipped: %v", bad)
			}
			if len(accts) != len(c.want) {
				t.Fatalf("loaded %v, want %v", accts, c.want)
			}
			for _, a := range accts {
				if rel, _ := filepath.Rel(dir, a.Path); rel != c.want[a.Name] {
					t.Fatalf("%s loaded from %s, want %s", a.Name, rel, c.want[a.Name])
				}
				if a.Name == "o1" && (a.Kind != OAuth || a.RefreshToken != "old-r") {
					t.Fatalf("o1 read from the wrong file: %+v", a)
				}
			}
			for name, real := range c.real {
				var path string
				for _, a := range accts {
					if a.Name == name {
						path = a.Path
					}
				}
				before, _ := os.Lstat(path)
				if err := WriteBack(dir, path, "new-a", "new-r", time.UnixMilli(2)); err != nil {
					t.Fatal(err)
				}
				b, _ := os.ReadFile(filepath.Join(dir, real))
				if !strings.Contains(string(b), "new-r") {
					t.Fatalf("real file %s not updated: %s", real, b)
				}
				after, _ := os.Lstat(path)
				if before.Mode()&os.ModeSymlink != after.Mode()&os.ModeSymlink {
					t.Fatalf("write-back replaced the link %s with a file", path)
				}
				if again, _ := LoadDir(dir, known); len(again) != len(c.want) {
					t.Fatalf("after write-back: %v", again)
				}
			}
		})
	}
}

// A symlinked account file is written through to its target when that
// target is inside the account folder, and never outside it.
func TestWriteBackThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "store", "o1.json"), oauthBody)
	symlink(t, "../store/o1.json", filepath.Join(dir, "high", "o1.json"))
	link := filepath.Join(dir, "high", "o1.json")
	if err := WriteBack(dir, link, "new-a", "new-r", time.UnixMilli(2)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the link was replaced by a regular file")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "store", "o1.json")); !strings.Contains(string(b), "new-r") {
		t.Fatalf("target not updated: %s", b)
	}

	outside := filepath.Join(t.TempDir(), "o2.json")
	writeFile(t, outside, oauthBody)
	symlink(t, outside, filepath.Join(dir, "high", "o2.json"))
	err := WriteBack(dir, filepath.Join(dir, "high", "o2.json"), "new-a", "new-r", time.UnixMilli(2))
	if !errors.Is(err, ErrNotWritable) {
		t.Fatalf("link outside the folder: err = %v, want ErrNotWritable", err)
	}
	if b, _ := os.ReadFile(outside); string(b) != oauthBody {
		t.Fatalf("a file outside the account folder was written: %s", b)
	}
}
