package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/store"
)

// The journal's crash and race tests run writers as separate processes:
// the test binary re-executed with childEnv set, so two writers share
// only the files and the Redis lock, as two replicas do.

const childEnv = "KEYS_LEDGER_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// runChild is a writer process. Env: LEDGER_DIR, LEDGER_REDIS (the lock's
// store), LEDGER_N (commits), LEDGER_TAG (the account its changes name),
// LEDGER_CRASH (a hook point: after its N commits, one more commit dies
// there). Modes: "issue" (each commit issues two keys and binds them to
// TAG, all or nothing), "bindall" (binds every key of the ledger to TAG,
// ten a commit), "torn" (N issue commits, then half a line and death).
func runChild(mode string) int {
	ctx := context.Background()
	dir, tag := os.Getenv("LEDGER_DIR"), os.Getenv("LEDGER_TAG")
	n, _ := strconv.Atoi(os.Getenv("LEDGER_N"))
	o, err := store.ParseURL(os.Getenv("LEDGER_REDIS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rdb := redis.NewUniversalClient(o)
	defer rdb.Close()
	l := NewLedger(dir, NewRedisLocker(rdb))
	defer l.Close(ctx)
	issue := func() error {
		a, b := testRecord("trial"), testRecord("trial")
		_, err := l.Commit(ctx,
			Change{Op: OpIssue, Record: a}, Change{Op: OpIssue, Record: b},
			Change{Op: OpBind, Tier: "trial", Hash: a.Hash, Account: tag},
			Change{Op: OpBind, Tier: "trial", Hash: b.Hash, Account: tag})
		return err
	}
	crash := os.Getenv("LEDGER_CRASH")
	die := func(point string) func(string) {
		return func(p string) {
			if p == point {
				os.Exit(3)
			}
		}
	}
	if crash == "compacted" {
		// Compactions come when the journal outgrows the snapshot: die
		// inside the first one, whenever it comes.
		l.hook = die(crash)
	}
	switch mode {
	case "issue", "torn":
		for range n {
			if err := issue(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	case "bindall":
		all, err := l.All(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for i := 0; i < len(all); i += 10 {
			var cs []Change
			for _, r := range all[i:min(i+10, len(all))] {
				cs = append(cs, Change{Op: OpBind, Tier: r.Tier, Hash: r.Hash, Account: tag})
			}
			if _, err := l.Commit(ctx, cs...); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		return 1
	}
	if mode == "torn" {
		f, err := os.OpenFile(filepath.Join(dir, "trial"+journalSuffix), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, _ = f.WriteString(`{"op":"issue","at":"2026-03-01T12:00:00Z","id":"k_0`)
		}
		os.Exit(3) // a crash in the middle of a write
	}
	if crash != "" && crash != "compacted" {
		l.hook = die(crash)
		_ = issue() // dies inside
		return 1
	}
	return 0
}

// child runs one writer process and returns a wait for its exit code.
func child(t *testing.T, mode, dir, redisURL, tag string, n int, crash string) func() int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "LEDGER_DIR="+dir, "LEDGER_REDIS="+redisURL,
		"LEDGER_TAG="+tag, "LEDGER_N="+strconv.Itoa(n), "LEDGER_CRASH="+crash)
	out := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() int {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ee.ExitCode() != 3 {
				t.Logf("child %s: %s", tag, out.String())
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
}

// byAccount counts a fresh reader's records per account.
func byAccount(t *testing.T, dir string) map[string]int {
	t.Helper()
	all, err := NewLedger(dir, nil).All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, r := range all {
		m[r.Account]++
	}
	return m
}

// Two writer processes append at once, enough to compact the journal
// several times while the other appends, and a reader in this process
// reads all along: no change is lost or torn, each commit is whole (every
// key is bound), and the reader never sees an error or fewer keys.
func TestTwoWriterProcessesAndCompaction(t *testing.T) {
	testenv.Redis(t, testDB)
	url := testenv.RedisURL(t, testDB)
	dir := t.TempDir()
	const n = 150 // commits per writer; 300 keys each, ~250 KB of lines: 3+ compactions
	waits := []func() int{child(t, "issue", dir, url, "w1", n, ""), child(t, "issue", dir, url, "w2", n, "")}
	r := NewLedger(dir, nil)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		last := 0
		for {
			select {
			case <-done:
				return
			default:
			}
			all, err := r.All(context.Background())
			if err != nil {
				t.Errorf("reader during the writes: %v", err)
				return
			}
			if len(all) < last {
				t.Errorf("reader saw %d keys after %d", len(all), last)
				return
			}
			last = len(all)
		}
	})
	for i, w := range waits {
		if code := w(); code != 0 {
			t.Fatalf("writer %d exited %d", i+1, code)
		}
	}
	close(done)
	wg.Wait()
	got := byAccount(t, dir)
	if got["w1"] != 2*n || got["w2"] != 2*n || len(got) != 2 {
		t.Fatalf("keys per account = %v, want %d for w1 and w2 and no unbound key", got, 2*n)
	}
	snap, err := os.ReadFile(filepath.Join(dir, "trial"+snapSuffix))
	if err != nil {
		t.Fatalf("no snapshot: the test never compacted: %v", err)
	}
	if h, _, err := readHeader(snap, "snapshot"); err != nil || h.Gen < 2 {
		t.Fatalf("snapshot header %+v, %v: want at least two compactions", h, err)
	}
}

// Crashes at each point of a commit: mid-write (a torn line), after the
// append before the fsync, and inside a compaction (new snapshot, old
// journal). Every commit before the crash is there; the crashed one is
// whole or absent; the next writer process goes on from there.
func TestCrashesLoseNothingCommitted(t *testing.T) {
	rdb := testenv.Redis(t, testDB)
	url := testenv.RedisURL(t, testDB)
	for _, c := range []struct {
		name, mode, crash string
		n                 int
	}{
		{"torn line", "torn", "", 20},
		{"between append and fsync", "issue", "appended", 20},
		{"before the append", "issue", "append", 20},
		{"inside a compaction", "issue", "compacted", 1000}, // dies at the first compaction
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if code := child(t, c.mode, dir, url, "dead", c.n, c.crash)(); code != 3 {
				t.Fatalf("the crashing writer exited %d, want 3", code)
			}
			// A crashed holder's lock ends with its expiry (30 s); the
			// test ends it at once.
			if err := rdb.Del(context.Background(), LedgerLock).Err(); err != nil {
				t.Fatal(err)
			}
			got := byAccount(t, dir)
			if c.crash == "compacted" {
				// The snapshot is new, the journal is the one it folded in.
				snap, _ := os.ReadFile(filepath.Join(dir, "trial"+snapSuffix))
				jour, _ := os.ReadFile(filepath.Join(dir, "trial"+journalSuffix))
				sh, _, err1 := readHeader(snap, "snapshot")
				jh, _, err2 := readHeader(jour, "journal")
				if err1 != nil || err2 != nil || jh.Gen >= sh.Gen {
					t.Fatalf("not a crash inside a compaction: snapshot %+v %v, journal %+v %v", sh, err1, jh, err2)
				}
				if got["dead"] == 0 || got["dead"]%2 != 0 || len(got) != 1 {
					t.Fatalf("after the crash: %v, want whole commits of two keys", got)
				}
			} else if got["dead"] != 2*c.n && got["dead"] != 2*c.n+2 || len(got) != 1 {
				t.Fatalf("after the crash: %v, want the %d keys committed (and at most the whole crashed commit)", got, 2*c.n)
			}
			if code := child(t, "issue", dir, url, "next", 10, "")(); code != 0 {
				t.Fatalf("the next writer exited %d", code)
			}
			after := byAccount(t, dir)
			if after["dead"] != got["dead"] || after["next"] != 20 {
				t.Fatalf("after the next writer: %v", after)
			}
			if _, err := os.Stat(filepath.Join(dir, "trial"+journalSuffix)); err == nil {
				journalLines(t, dir, "trial") // every line whole
			}
		})
	}
}

// Two processes start on a ledger still in the old one-file form: the
// tier is migrated once, and neither loses the other's changes.
func TestMigrationByTwoProcesses(t *testing.T) {
	testenv.Redis(t, testDB)
	url := testenv.RedisURL(t, testDB)
	dir := t.TempDir()
	var es []entry
	for range 50 {
		es = append(es, toEntry(testRecord("trial")))
	}
	raw := mustJSON(t, es)
	if err := os.WriteFile(filepath.Join(dir, "trial.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	w1 := child(t, "issue", dir, url, "w1", 30, "")
	w2 := child(t, "bindall", dir, url, "w2", 0, "")
	if a, b := w1(), w2(); a != 0 || b != 0 {
		t.Fatalf("writers exited %d and %d", a, b)
	}
	got := byAccount(t, dir)
	// w2 bound the 50 old keys and whatever of w1's it saw; w1's keys
	// it did not see keep w1's binding.
	if got["w1"]+got["w2"] != 110 || got["w2"] < 50 || got[""] != 0 {
		t.Fatalf("after the migration: %v, want the 50 old keys bound to w2 and 60 new ones", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "trial.json.migrated")); err != nil {
		t.Fatalf("the old file was not set aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "trial.json")); !os.IsNotExist(err) {
		t.Fatalf("the old file is still read: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
