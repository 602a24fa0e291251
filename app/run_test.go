package app

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/usage"
)

// fakeHTTP is an HTTP surface that serves nothing: it says when Run
// handed it the listener and returns when its context ends.
type fakeHTTP struct {
	served chan net.Listener
}

func (f *fakeHTTP) Serve(ctx context.Context, ln net.Listener, _ time.Duration) error {
	f.served <- ln
	<-ctx.Done()
	return nil
}

func (f *fakeHTTP) ServeAdmin(ctx context.Context, _ net.Listener, _ time.Duration) error {
	<-ctx.Done()
	return nil
}

// syncs is an Observer that keeps the sync outcomes.
type syncs struct {
	mu  sync.Mutex
	ran []bool
}

func (s *syncs) SyncRun(ok bool) {
	s.mu.Lock()
	s.ran = append(s.ran, ok)
	s.mu.Unlock()
}
func (s *syncs) RefreshOutcome(string) {}
func (s *syncs) ProbeResult(string)    {}

func (s *syncs) outcomes() []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.ran...)
}

// Run syncs before it serves (the observer hears of it), and when its
// context ends it stops, writing what only memory held: the usage totals
// of the last moment and, with the embedded store, STORE_FILE.
func TestRunSyncsServesAndWritesWhatIsInMemoryAtStop(t *testing.T) {
	dir := t.TempDir()
	acct := filepath.Join(dir, "accounts")
	if err := os.Mkdir(acct, 0o700); err != nil {
		t.Fatal(err)
	}
	storeFile := filepath.Join(dir, "store.json")
	log := logrus.New()
	log.SetOutput(&testenv.Buffer{})
	a, err := Assemble(t.Context(), Config{
		AccountDir: acct, ProductDir: filepath.Join(dir, "product"), StoreFile: storeFile,
		SyncInterval: time.Hour, UsageFlushEvery: time.Hour, ShutdownGrace: time.Second, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	obs := &syncs{}
	a.Observe(obs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHTTP{served: make(chan net.Listener, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, ln, h) }()
	select {
	case got := <-h.served:
		if got != ln {
			t.Fatalf("served %v, want the listener Run was given", got.Addr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run never served")
	}
	if got := obs.outcomes(); len(got) != 1 || !got[0] {
		t.Fatalf("sync outcomes before serving: %v, want one successful sync", got)
	}
	if err := a.Usage.Record(ctx, "h1", "a1", "sonnet", usage.Usage{InputTokens: 7}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := a.Usage.Unflushed(); n != 0 {
		t.Fatalf("%d usage subjects still in memory after Run", n)
	}
	sum, err := a.Usage.Key(context.Background(), "h1")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total.Requests != 1 || sum.Total.InputTokens != 7 {
		t.Fatalf("usage in the store after Run: %+v, want 1 request of 7 input tokens", sum.Total)
	}
	if fi, err := os.Stat(storeFile); err != nil || fi.Size() == 0 {
		t.Fatalf("STORE_FILE not written at stop: %v", err)
	}
}

// failingHTTP's public listener fails at once; its admin listener serves
// until its context ends.
type failingHTTP struct{ adminDone chan struct{} }

var errAccept = errors.New("accept: too many open files")

func (f *failingHTTP) Serve(context.Context, net.Listener, time.Duration) error { return errAccept }

func (f *failingHTTP) ServeAdmin(ctx context.Context, _ net.Listener, _ time.Duration) error {
	<-ctx.Done()
	close(f.adminDone)
	return nil
}

// A public listener that fails ends Run with its error, the admin
// listener stopped too: the process exits (and is restarted) instead of
// living on with only its admin surface until a signal comes.
func TestRunEndsWhenTheListenerFails(t *testing.T) {
	dir := t.TempDir()
	log := logrus.New()
	log.SetOutput(&testenv.Buffer{})
	a, err := Assemble(t.Context(), Config{AccountDir: dir, ProductDir: filepath.Join(dir, "product"),
		SyncInterval: time.Hour, ShutdownGrace: time.Second, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	a.AdminListener = listen()
	h := &failingHTTP{adminDone: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- a.Run(t.Context(), listen(), h) }() // a context that does not end
	select {
	case err := <-done:
		if !errors.Is(err, errAccept) {
			t.Fatalf("Run: %v, want the listener's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running 10 s after its listener failed")
	}
	select {
	case <-h.adminDone:
	default:
		t.Fatal("the admin listener was left serving")
	}
}
