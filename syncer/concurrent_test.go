package syncer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/keys"
)

// Two replicas (two clients) asked to sync while one sync runs: ONE sync
// runs, and the second replica waits for it and returns its report
// (Joined, same ID).
func TestConcurrentSyncRunsOnceAndTheOtherJoins(t *testing.T) {
	e := realRedis(t)
	e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
	e.oauthFile("high", "h2", "sk-ant-oat01-H2", "sk-ant-ort01-H2", t0.Add(time.Hour))
	var runs atomic.Int32
	entered, release := make(chan struct{}), make(chan struct{})
	gated := ledgerFunc(func(ctx context.Context) ([]keys.Record, error) {
		if runs.Add(1) == 1 {
			close(entered)
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return e.ledger.All(ctx)
	})
	a, b := e.replicaOn(e.client(), gated), e.replicaOn(e.client(), gated)
	type result struct {
		rep Report
		err error
	}
	ra, rb := make(chan result, 1), make(chan result, 1)
	go func() { r, err := a.Sync(e.ctx); ra <- result{r, err} }()
	<-entered
	go func() { r, err := b.Sync(e.ctx); rb <- result{r, err} }()
	select {
	case r := <-rb:
		t.Fatalf("second replica returned while the sync was still running: %+v", r)
	case <-time.After(200 * time.Millisecond): // it is waiting, as it should
	}
	close(release)
	x, y := <-ra, <-rb
	if x.err != nil || y.err != nil {
		t.Fatal(x.err, y.err)
	}
	if runs.Load() != 1 {
		t.Fatalf("%d syncs ran", runs.Load())
	}
	if x.rep.Joined || !y.rep.Joined || y.rep.ID != x.rep.ID || len(y.rep.Added) != 2 {
		t.Fatalf("runner %+v\njoiner %+v", x.rep, y.rep)
	}
}

// Several replicas released at the same instant: syncs never overlap, every
// replica gets a report, and a joined report is the one a runner produced.
func TestSimultaneousSyncsNeverOverlap(t *testing.T) {
	e := realRedis(t)
	e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
	var inflight, maxInflight atomic.Int32
	counting := ledgerFunc(func(ctx context.Context) ([]keys.Record, error) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := maxInflight.Load()
			if n <= m || maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		return e.ledger.All(ctx)
	})
	const replicas = 4
	start := make(chan struct{})
	reps := make([]Report, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		s := e.replicaOn(e.client(), counting)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			reps[i], errs[i] = s.Sync(e.ctx)
		}()
	}
	close(start)
	wg.Wait()
	ran := map[string]bool{}
	for i, r := range reps {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !r.Joined {
			ran[r.ID] = true
		}
	}
	for _, r := range reps {
		if r.Joined && !ran[r.ID] {
			t.Fatalf("joined a run nobody made: %+v", r)
		}
	}
	if maxInflight.Load() != 1 {
		t.Fatalf("%d syncs overlapped", maxInflight.Load())
	}
	t.Logf("%d of %d replicas ran a sync", len(ran), replicas)
}

// A replica that died holding the lock leaves no report; the waiting one
// runs the sync itself once the lock expires.
func TestDeadHolderIsTakenOver(t *testing.T) {
	e := realRedis(t)
	e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
	if err := e.rdb.Set(e.ctx, lockKey, "dead-replica", 150*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	rep, err := e.s.Sync(ctx)
	if err != nil || rep.Joined || len(rep.Added) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
}

// Requests keep flowing during a sync: 200 concurrent readers doing the
// proxy's hot-path reads never find a valid key missing, unbound, or bound
// to an account that is absent, out of its tier or without credentials,
// while syncs run that rewrite every account and add and remove another.
func TestReadsDuringSyncNeverMissAKey(t *testing.T) {
	e := realRedis(t)
	const accts, nkeys = 10, 60
	token := func(i, round int) string { return fmt.Sprintf("sk-ant-api03-T%d-%d", i, round) }
	writeAll := func(round int) {
		for i := range accts {
			name := fmt.Sprintf("t%02d", i)
			if i%2 == 0 {
				e.apiKeyFile("trial", name, token(i, round))
			} else {
				e.oauthFile("trial", name, token(i, round), "sk-ant-ort01-"+name, t0.Add(time.Duration(round+1)*time.Hour))
			}
		}
	}
	writeAll(0)
	e.sync()
	recs := make([]keys.Record, nkeys)
	for i := range recs {
		recs[i] = e.issue("trial", true)
	}

	ctx, stop := context.WithCancel(e.ctx)
	syncer := e.replicaOn(e.client(), nil)
	var syncs atomic.Int32
	syncDone := make(chan error, 1)
	go func() {
		for round := 1; ctx.Err() == nil; round++ {
			writeAll(round)
			if round%2 == 1 {
				e.apiKeyFile("trial", "spare", "sk-ant-api03-SPARE")
			} else {
				e.remove("trial", "spare")
			}
			if _, err := syncer.Sync(ctx); err != nil && ctx.Err() == nil {
				syncDone <- err
				return
			}
			syncs.Add(1)
		}
		syncDone <- nil
	}()

	// Every reader keeps reading until several whole syncs have run, so
	// the reads overlap them whatever the machine's speed.
	const readers, minReads, minSyncs = 200, 10, 3
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	failures := make(chan string, readers)
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < minReads || (syncs.Load() < minSyncs && time.Now().Before(deadline)); i++ {
				if msg := e.hotRead(recs[(r+i)%nkeys].Hash); msg != "" {
					failures <- msg
					return
				}
			}
		}()
	}
	wg.Wait()
	stop()
	if err := <-syncDone; err != nil {
		t.Fatal(err)
	}
	close(failures)
	for msg := range failures {
		t.Error(msg)
	}
	if syncs.Load() < minSyncs {
		t.Fatalf("only %d syncs ran during the reads", syncs.Load())
	}
	t.Logf("%d syncs during the reads", syncs.Load())
}

// hotRead does the proxy's two round trips for an already-bound key and
// returns what would make it refuse the key, "" if nothing.
func (e *env) hotRead(hash string) string {
	var rec *redis.MapStringStringCmd
	var bind *redis.StringCmd
	_, err := e.rdb.Pipelined(e.ctx, func(p redis.Pipeliner) error {
		rec = e.keys.QueueGet(e.ctx, p, hash)
		bind = e.pool.QueueBound(e.ctx, p, hash)
		return nil
	})
	if err != nil {
		return "round trip 1: " + err.Error()
	}
	r, err := keys.ParseRecord(hash, rec.Val())
	if err != nil {
		return "key record: " + err.Error()
	}
	if err := r.Active(e.clk.Now()); err != nil {
		return "key " + r.ID + ": " + err.Error()
	}
	name := bind.Val()
	if name == "" {
		return "key " + r.ID + " unbound"
	}
	var acct *redis.MapStringStringCmd
	var member, bl *redis.BoolCmd
	_, err = e.rdb.Pipelined(e.ctx, func(p redis.Pipeliner) error {
		acct = e.accounts.QueueGet(e.ctx, p, name)
		member = p.SIsMember(e.ctx, "cr:{pool}:tier:"+r.Tier, name)
		bl = p.HExists(e.ctx, "cr:{pool}:bl", name)
		return nil
	})
	if err != nil {
		return "round trip 2: " + err.Error()
	}
	if m := acct.Val(); len(m) == 0 || (m["api_key"] == "" && m["access"] == "") {
		return "account " + name + " without credentials"
	}
	if !member.Val() || bl.Val() {
		return "account " + name + " out of service"
	}
	return ""
}
