package syncer

import (
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
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
