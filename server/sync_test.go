package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

// rdb is a client to the world's store, closed when the test ends.
func (e *env) rdb() testenv.RedisClient { return testenv.Client(e.t, e.redisURL) }

func (e *env) sync() map[string]any {
	var out struct {
		Report map[string]any
	}
	if st := e.admin(http.MethodPost, "/admin/api/sync", nil, &out); st != 200 {
		e.t.Fatalf("sync: %d", st)
	}
	return out.Report
}

// accountOf returns the account the upstream saw for the last request.
func (e *env) lastCredential() string {
	reqs := e.fake.Requests()
	if len(reqs) == 0 {
		return ""
	}
	return reqs[len(reqs)-1].Credential
}

func TestFlushAllThenSyncLosesNothing(t *testing.T) {
	e := newEnv(t)
	cred := map[string]string{"a1": e.apiAccount("high", "a1"), "a2": e.apiAccount("high", "a2")}
	url := e.start()
	keys := []string{e.issue("high"), e.issue("high"), e.issue("high", "a2"), e.issue("trial")}
	revoked := e.issue("high")
	e.admin(http.MethodDelete, "/admin/api/keys/"+keyIDOf(revoked), nil, nil)
	before := map[string]string{}
	for _, k := range keys[:3] {
		if r := post(t, url, "/v1/messages", k, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
			t.Fatal(r.status)
		}
		before[k] = e.lastCredential()
	}
	// Bindings reach the ledger off the request path, with the next batch.
	if err := e.apps[0].Ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.Flush(t, e.rdb())
	rep := e.sync()
	if rep["keys_restored"].(float64) != 5 || rep["bindings_restored"].(float64) != 3 {
		t.Fatalf("report %v", rep)
	}
	for _, k := range keys[:3] {
		if r := post(t, url, "/v1/messages", k, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
			t.Fatalf("key lost after FLUSHALL+sync: %d %s", r.status, r.body)
		}
		if e.lastCredential() != before[k] {
			t.Fatalf("key moved accounts across FLUSHALL+sync")
		}
	}
	if r := post(t, url, "/v1/messages", revoked, msgBody("claude-sonnet-4-5", false)); r.status != 401 {
		t.Fatalf("a revoked key must stay revoked: %d", r.status)
	}
	// The unused trial key is back too (and fails only for lack of a trial account).
	if r := post(t, url, "/v1/messages", keys[3], msgBody("claude-sonnet-4-5", false)); r.status != 503 {
		t.Fatalf("trial key: %d %s", r.status, r.body)
	}
	_ = cred
}

func TestRemovedAccountFileMovesKeysAndClearsState(t *testing.T) {
	e := newEnv(t)
	k1 := e.apiAccount("high", "a1")
	k2 := e.apiAccount("high", "a2")
	url := e.start()
	key := e.issue("high", "a1")
	post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	e.admin(http.MethodPost, "/admin/api/accounts/a1/blacklist", map[string]string{"reason": "test"}, nil)
	e.admin(http.MethodPost, "/admin/api/accounts/a1/recover", nil, nil)
	if err := os.Remove(filepath.Join(e.acctDir, "high", "a1.json")); err != nil {
		t.Fatal(err)
	}
	rep := e.sync()
	if rm, _ := rep["accounts_removed"].([]any); len(rm) != 1 || rm[0] != "a1" {
		t.Fatalf("report %v", rep)
	}
	rdb := e.rdb()
	ctx := context.Background()
	if n, _ := rdb.Exists(ctx, "cr:acct:a1").Result(); n != 0 {
		t.Fatal("a1's credentials are still in Redis")
	}
	for _, h := range []string{"cr:{pool}:used", "cr:{pool}:bl", "cr:{pool}:limited"} {
		if ok, _ := rdb.HExists(ctx, h, "a1").Result(); ok {
			t.Fatalf("a1 still in %s", h)
		}
	}
	if ok, _ := rdb.SIsMember(ctx, "cr:{pool}:tier:high", "a1").Result(); ok {
		t.Fatal("a1 still in the tier")
	}
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 || e.lastCredential() != k2 {
		t.Fatalf("key must be served by a2 now: %d", r.status)
	}
	_ = k1
}

func TestEditedTokenIsUsedByEveryInstance(t *testing.T) {
	e := newEnv(t)
	e.oauthAccount("high", "o1", time.Now().Add(8*time.Hour))
	u1, u2 := e.start(), e.start()
	key := e.issue("high")
	post(t, u1, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	// The operator pastes fresh credentials into the file.
	fresh := "sk-ant-oat01-pasted-access"
	e.fake.AddOAuth(fresh, "sk-ant-ort01-pasted-refresh", time.Now().Add(9*time.Hour))
	e.writeAccount("high", "o1", map[string]any{"claudeAiOauth": map[string]any{
		"accessToken": fresh, "refreshToken": "sk-ant-ort01-pasted-refresh", "expiresAt": time.Now().Add(9 * time.Hour).UnixMilli()}})
	rep := e.sync()
	if up, _ := rep["accounts_updated"].([]any); len(up) != 1 {
		t.Fatalf("report %v", rep)
	}
	for _, u := range []string{u1, u2} {
		if r := post(t, u, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 || e.lastCredential() != fresh {
			t.Fatalf("%s did not use the new token: %d", u, r.status)
		}
	}
}

func TestTrafficFlowsThroughSync(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("supreme", "s1")
	e.apiAccount("supreme", "s2")
	e.apiAccount("supreme", "s3")
	u1, u2 := e.start(), e.start()
	var ks []string
	for i := 0; i < 6; i++ {
		ks = append(ks, e.issue("supreme"))
	}
	var bad atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var sent atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if sent.Add(1) > 1000 {
					return
				}
				u := u1
				if i%2 == 1 {
					u = u2
				}
				// haiku: unlimited, so any refusal is one the key did not earn.
				if r := post(t, u, "/v1/messages", ks[(w+i)%len(ks)], msgBody("claude-haiku-4-5", false)); r.status != 200 {
					bad.Add(1)
					t.Errorf("refused during sync: %d %s", r.status, r.body)
				}
			}
		}(w)
	}
	var syncs int
	for sent.Load() < 1000 {
		e.sync()
		syncs++
	}
	close(stop)
	wg.Wait()
	if bad.Load() != 0 || syncs < 2 {
		t.Fatalf("%d refusals over %d syncs", bad.Load(), syncs)
	}
}

func TestConcurrentSyncsRunOnce(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 150; i++ { // enough work that the two calls overlap
		e.apiAccount("trial", fmt.Sprintf("t%03d", i))
	}
	e.start()
	e.start()
	var wg sync.WaitGroup
	reps := make([]map[string]any, 2)
	start := make(chan struct{})
	for i := range e.apps {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			rep, err := e.apps[i].Syncer.Sync(context.Background())
			if err != nil {
				t.Error(err)
			}
			reps[i] = map[string]any{"joined": rep.Joined, "started": rep.StartedAt}
		}(i)
	}
	close(start)
	wg.Wait()
	joined := 0
	for _, r := range reps {
		if r["joined"] == true {
			joined++
		}
	}
	if joined != 1 || !reps[0]["started"].(time.Time).Equal(reps[1]["started"].(time.Time)) {
		t.Fatalf("two syncs at once must run one: %v", reps)
	}
}

func TestExpiredKeyFreesItsSlotAtSync(t *testing.T) {
	fc := clock.NewFake(time.Now())
	e := newEnv(t, withClock(fc))
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatal(r.status)
	}
	slots := func() float64 {
		var p struct {
			Tiers []struct {
				SlotsUsed float64 `json:"slots_used"`
			}
		}
		e.admin(http.MethodGet, "/admin/api/pool?tier=trial", nil, &p)
		return p.Tiers[0].SlotsUsed
	}
	if slots() != 1 {
		t.Fatal("bound key takes a slot")
	}
	// A trial key lives one day. Moving the fake clock may also fire the
	// periodic sync; either way, after a sync the slot is free.
	fc.Advance(24*time.Hour + time.Minute)
	rep := e.sync()
	if slots() != 0 {
		t.Fatalf("expired key's slot not released: %v", rep)
	}
}

// A store that comes back empty (flushed, restarted without persistence,
// failed over) is re-synced by itself: no operator action, no restart.
func TestEmptiedStoreResyncsByItself(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatal(r.status)
	}
	e.srvs[0].waitBackground()
	e.ledgerFlush() // bindings reach the ledger with the writer's next batch
	testenv.Flush(t, e.rdb())
	deadline := time.Now().Add(5 * time.Second)
	var st int
	for time.Now().Before(deadline) {
		if st = post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)).status; st == 200 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the key did not come back by itself: %d", st)
}
