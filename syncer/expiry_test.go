package syncer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
)

// A key's slot is free at its expiry, not at the next 4-hourly sync: the
// expirer sleeps until the earliest expiry of a bound key (fake clock).
func TestExpirerFreesTheSlotAtExpiry(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.apiKeyFile("trial", "t1", "sk-ant-api03-T1")
		e.sync()
		short := e.issueFor("trial", time.Hour, true)
		long := e.issueFor("trial", 24*time.Hour, true)
		log := logrus.New()
		log.SetOutput(e.logs)
		sweeps := make(chan int, 16)
		x := &Expirer{Pool: e.pool, Keys: e.keys, Clock: e.clk, Log: log, MaxWait: 4 * time.Hour,
			OnSweep: func(freed int, err error) {
				if err != nil {
					t.Errorf("sweep: %v", err)
				}
				sweeps <- freed
			}}
		ctx, cancel := context.WithCancel(e.ctx)
		done := make(chan struct{})
		go func() { defer close(done); x.Run(ctx) }()
		defer func() { cancel(); <-done }()
		if n := <-sweeps; n != 0 {
			t.Fatalf("first sweep freed %d", n)
		}
		waitPending(t, e)
		e.clk.Advance(time.Hour) // exactly the short key's expiry
		if n := <-sweeps; n != 1 {
			t.Fatalf("sweep at expiry freed %d, want 1", n)
		}
		if b := e.bound(short.Hash); b != "" {
			t.Fatalf("expired key still bound to %s", b)
		}
		if b := e.bound(long.Hash); b == "" {
			t.Fatal("the other key lost its slot")
		}
	})
}

// waitPending waits for the expirer to arm its timer: something that
// must happen, with a deadline, never a sleep for something not to.
func waitPending(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.clk.Pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the expirer never armed its timer")
		}
		time.Sleep(time.Millisecond)
	}
}

// noFullRead is a pool whose full read of the bindings fails the test.
type noFullRead struct {
	*accounts.Pool
	t *testing.T
}

func (p noFullRead) Bindings(context.Context) (map[string]string, error) {
	p.t.Error("the sweep read every binding")
	return nil, errors.New("no full read")
}

// A sweep looks only at the keys the ledger holds as revoked or expired,
// not at every binding and record in Redis (issue 27: at 100,000 keys
// that was 100,000 commands a minute), and still frees their slots.
func TestExpirySweepReadsOnlyLapsedKeys(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.apiKeyFile("trial", "t1", "sk-ant-api03-T1")
		e.sync()
		short := e.issueFor("trial", time.Hour, true)
		long := e.issueFor("trial", 24*time.Hour, true)
		x := &Expirer{Pool: noFullRead{e.pool, t}, Keys: e.keys, Clock: e.clk, Log: logrus.New()}
		e.clk.Advance(time.Hour)
		freed, next, err := x.Sweep(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if freed != 1 || e.bound(short.Hash) != "" || e.bound(long.Hash) == "" {
			t.Fatalf("freed %d (want 1); expired key bound to %q, the other to %q", freed, e.bound(short.Hash), e.bound(long.Hash))
		}
		if !next.Equal(long.Expires) {
			t.Fatalf("next sweep at %v, want the next expiry %v", next, long.Expires)
		}
	})
}
