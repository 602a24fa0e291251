package accounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/claude-route/claude-route/internal/atomicfile"
)

// The account folder, ACCOUNT_DIR/<tier>/**/<name>.json, is walked by one
// walker (walkFolder) for loading and for the admin verbs alike, and
// written under one lock (lockFolder) by the verbs and the refresher's
// write-back alike. A write goes through a symlink into its target, never
// replacing the link, and never reaches a target outside the folder.

// ErrNotWritable is an account file that cannot be updated in place: a
// symlink that leads outside ACCOUNT_DIR, or a read-only mount (Kubernetes
// Secrets). The refreshed tokens stay in Redis.
var ErrNotWritable = errors.New("account file cannot be updated")

// namePattern is what an account may be called: it appears in Redis keys,
// logs, URLs and file names, so no leading dot (hidden files, "..").
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// NameRule says the rule of ValidName, for error messages.
const NameRule = "1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit"

// ValidName reports whether s can name an account (NameRule).
func ValidName(s string) bool { return namePattern.MatchString(s) }

// hidden names are never accounts or tiers: editors' backups, the trash,
// temp files and Kubernetes' "..data" folders.
func hidden(name string) bool { return strings.HasPrefix(name, ".") }

// within reports whether real path p is root or lies under it.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// walker visits the account files under a folder. found is called for
// each *.json inside a tier folder, in lexical order, and returns false to
// stop the walk; bad is told of everything that cannot be walked.
type walker struct {
	root   string          // the folder's real path
	walked map[string]bool // real folder paths already walked
	found  func(path, tier, name string) bool
	bad    func(LoadError)
	stop   bool
}

// walkFolder walks dir (see LoadDir for the rules). Symlinks are followed
// (Kubernetes' visible names are links through "..data"), folders only
// when they resolve inside dir, and each real folder is walked once.
func walkFolder(dir string, found func(path, tier, name string) bool, bad func(LoadError)) error {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	w := walker{root: root, walked: map[string]bool{root: true}, found: found, bad: bad}
	for _, e := range ents {
		if w.stop {
			break
		}
		if hidden(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		st, err := os.Stat(path) // follows a symlink
		if err != nil {
			w.bad(LoadError{path, err})
			continue
		}
		if !st.IsDir() {
			if strings.HasSuffix(e.Name(), ".json") {
				w.bad(LoadError{path, fmt.Errorf("%w: not inside a tier folder", ErrBadFile)})
			}
			continue
		}
		w.walk(path, e.Name())
	}
	return nil
}

// walk visits the files under folder, which belongs to tier.
func (w *walker) walk(folder, tier string) {
	real, err := filepath.EvalSymlinks(folder)
	if err != nil {
		w.bad(LoadError{folder, err})
		return
	}
	if !within(w.root, real) {
		w.bad(LoadError{folder, fmt.Errorf("%w: links outside the account folder", ErrBadFile)})
		return
	}
	if w.walked[real] {
		return
	}
	w.walked[real] = true
	ents, err := os.ReadDir(folder)
	if err != nil {
		w.bad(LoadError{folder, err})
		return
	}
	for _, e := range ents {
		if w.stop {
			return
		}
		if hidden(e.Name()) {
			continue
		}
		path := filepath.Join(folder, e.Name())
		st, err := os.Stat(path)
		if err != nil {
			w.bad(LoadError{path, err})
			continue
		}
		if st.IsDir() {
			w.walk(path, tier)
			continue
		}
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			w.stop = !w.found(path, tier, name)
		}
	}
}

// lockFolder takes the folder's write lock: an exclusive flock on the
// folder itself. It covers every writer of the folder, in this process
// (each call opens its own descriptor, and flocks on two descriptors
// exclude each other) and in other processes on the host; it needs no
// lock file, so it works on a read-only mount too, where the write that
// follows fails with ErrNotWritable.
func lockFolder(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("lock the account folder: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock the account folder: %w", err)
	}
	return func() { _ = f.Close() }, nil // closing the descriptor releases the flock
}

// target is the file a write to path must change: path itself, or, for a
// symlink, the file it leads to. A target outside dir is ErrNotWritable.
// path need not exist yet (a new account): its folder is resolved.
func target(dir, path string) (string, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, lerr := os.Lstat(path); lerr == nil {
			return "", fmt.Errorf("%w: %s is a link to a missing file", ErrNotWritable, path)
		}
		var folder string
		if folder, err = filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
			real = filepath.Join(folder, filepath.Base(path))
		}
	}
	if err != nil {
		return "", err
	}
	if !within(root, real) {
		return "", fmt.Errorf("%w: %s links outside the account folder (to %s); change it there", ErrNotWritable, path, real)
	}
	return real, nil
}

// writeLocked replaces the target of path with data, atomically. The
// caller holds the folder lock.
func writeLocked(dir, path string, data []byte) error {
	real, err := target(dir, path)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(real, data); err != nil {
		if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("%w: %w", ErrNotWritable, err)
		}
		return err
	}
	return nil
}

// updateFile reads path's target, passes its bytes to change and writes
// what it returns, all under the folder lock, so that no other writer's
// change (a refresh's rotated token above all) is lost in between.
func updateFile(dir, path string, change func([]byte) ([]byte, error)) error {
	unlock, err := lockFolder(dir)
	if err != nil {
		return err
	}
	defer unlock()
	real, err := target(dir, path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return err
	}
	out, err := change(b)
	if err != nil {
		return err
	}
	return writeLocked(dir, path, out)
}
