//go:build chaos

package chaos

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/e2eproc"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

const (
	adminToken = "chaos-admin-token-0123456789abcdef"
	quota      = 40 // the key's sonnet requests per window
	workers    = 4
	rounds     = 5
	faultAfter = 12 // admissions before the fault
	// spareMax is ratelimit's most spares per window and replica: what a
	// killed replica may take away from a key (never add to it).
	spareMax = 8
)

// rig is one redis-server, the fake upstream and the serve processes'
// environment: one account c1 in a tier "chaos" that sells quota sonnet
// requests per 5 h.
type rig struct {
	t     *testing.T
	bin   string
	ports *e2eproc.Ports
	fake  *fakeupstream.Server
	redis string // host:port of the redis-server
	env   []string
}

func newRig(t *testing.T) *rig {
	e2eproc.RequireRedis(t)
	dir := t.TempDir()
	r := &rig{t: t, ports: e2eproc.NewPorts(t)}
	port := r.ports.Get()
	e2eproc.StartRedis(t, dir, port)
	r.redis = e2eproc.Addr(port)
	r.fake = fakeupstream.Start(fakeupstream.Options{})
	t.Cleanup(r.fake.Close)
	acct, prod := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(acct, "chaos"), 0o700); err != nil {
		t.Fatal(err)
	}
	r.fake.AddAPIKey("sk-ant-api03-chaos-c1")
	if err := os.WriteFile(filepath.Join(acct, "chaos", "c1.json"), []byte(`{"apiKey":"sk-ant-api03-chaos-c1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tiersFile := filepath.Join(dir, "tiers.json")
	tiers := `{"tiers":[{"name":"chaos","slots":10,"families":["sonnet"],"quotas":{"sonnet":40}}]}`
	if err := os.WriteFile(tiersFile, []byte(tiers), 0o600); err != nil {
		t.Fatal(err)
	}
	r.env = []string{"ACCOUNT_DIR=" + acct, "PRODUCT_DIR=" + prod, "TIERS_FILE=" + tiersFile,
		"UPSTREAM_URL=" + r.fake.URL(), "OAUTH_TOKEN_URL=" + r.fake.TokenURL(),
		"ADMIN_TOKEN=" + adminToken, "LOG_LEVEL=info", "SHUTDOWN_GRACE=1s"}
	r.bin = e2eproc.BuildBinary(t)
	return r
}

// serve starts a replica whose store is at redisAddr.
func (r *rig) serve(redisAddr string) *e2eproc.Serve {
	return e2eproc.StartServe(r.t, r.bin, r.ports.Get(), append(r.env, "REDIS_URL=redis://"+redisAddr))
}

// upstreamSeen is how many message requests reached the upstream.
func (r *rig) upstreamSeen() int {
	n := 0
	for _, q := range r.fake.Requests() {
		if q.Method == http.MethodPost && q.Path == "/v1/messages" {
			n++
		}
	}
	return n
}

// issueKey issues a key of the chaos tier bound to account c1 (retried
// for a while: the replica may still be settling in). Bound at issue, a
// key's requests write nothing to the ledger: a replica killed while it
// held the ledger's lock would hold up the next binding for the lock's
// expiry, which is not this test's subject.
func issueKey(t *testing.T, s *e2eproc.Serve) string {
	t.Helper()
	key, status := "", 0
	if _, ok := e2eproc.WaitFor(15*time.Second, func() bool {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/admin/api/keys", strings.NewReader(`{"tier":"chaos","account":"c1"}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var out struct {
			Key string `json:"key"`
		}
		status = resp.StatusCode
		if json.NewDecoder(resp.Body).Decode(&out) != nil || status != http.StatusCreated {
			return false
		}
		key = out.Key
		return key != ""
	}); !ok {
		t.Fatalf("issue a key: last answer %d", status)
	}
	return key
}

var client = &http.Client{Timeout: 15 * time.Second}

// send posts one sonnet message with key; 0 means no answer (a dead
// replica).
func send(url, key string) int {
	body := `{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// burst sends key's requests from workers goroutines, back to back, to the
// replicas in turn (to b alone once a is dead). After faultAfter answers
// of 200 it calls fault once, on its own goroutine. A worker stops after
// its second 429 or its 3×quota/workers-th request. It returns the answers
// by status.
func burst(key string, a, b *e2eproc.Serve, aDead *atomic.Bool, fault func()) map[int]int {
	var mu sync.Mutex
	seen := map[int]int{}
	var ok atomic.Int32
	var once sync.Once
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			refused := 0
			for i := 0; i < 3*quota/workers && refused < 2; i++ {
				url := b.URL
				if (w+i)%2 == 0 && !aDead.Load() {
					url = a.URL
				}
				st := send(url, key)
				mu.Lock()
				seen[st]++
				mu.Unlock()
				switch st {
				case http.StatusOK:
					if ok.Add(1) == faultAfter {
						once.Do(func() { wg.Go(fault) })
					}
				case http.StatusTooManyRequests:
					refused++
				}
			}
		})
	}
	wg.Wait()
	return seen
}

// The quota holds whatever happens to a replica: one SIGKILLed after about
// a dozen admissions of a burst that both were serving with quota spares,
// the burst finished on the other. The upstream sees at most the quota,
// every round; and the dead replica costs the key at most the spares it
// held and the requests it had in flight.
func TestKilledReplicaNeverOvershootsTheQuota(t *testing.T) {
	r := newRig(t)
	b := r.serve(r.redis)
	// Keys are issued (and bound) before anything is killed.
	keys := make([]string, rounds)
	for i := range keys {
		keys[i] = issueKey(t, b)
	}
	for round, key := range keys {
		a := r.serve(r.redis)
		before := r.upstreamSeen()
		var aDead atomic.Bool
		seen := burst(key, a, b, &aDead, func() {
			aDead.Store(true)
			a.Kill()
		})
		got := r.upstreamSeen() - before
		t.Logf("round %d: upstream saw %d of a quota of %d; answers %v", round+1, got, quota, seen)
		if got > quota {
			t.Errorf("round %d: upstream saw %d requests of a key with a quota of %d", round+1, got, quota)
		}
		if low := quota - spareMax - workers; got < low {
			t.Errorf("round %d: upstream saw %d requests, want at least %d (the quota less a dead replica's spares and requests in flight)", round+1, got, low)
		}
	}
}

// The same burst, both replicas alive, while the store answers 1.5 s late
// for a spell (longer than the request path's store budget, and than a
// spare's use-by time): the upstream sees at most the quota, every round,
// and once the late answers have landed the key counts exactly what the
// upstream saw.
func TestSlowStoreNeverOvershootsTheQuota(t *testing.T) {
	r := newRig(t)
	slow := testenv.NewSlowProxy(t, r.redis, 0)
	a, b := r.serve(slow.Addr()), r.serve(slow.Addr())
	keys := make([]string, rounds)
	for i := range keys {
		keys[i] = issueKey(t, b)
	}
	var never atomic.Bool
	for round, key := range keys {
		before := r.upstreamSeen()
		seen := burst(key, a, b, &never, func() {
			slow.SetDelay(1500 * time.Millisecond)
			time.Sleep(2500 * time.Millisecond) // the spell
			slow.SetDelay(0)
		})
		got := r.upstreamSeen() - before
		t.Logf("round %d: upstream saw %d of a quota of %d; answers %v", round+1, got, quota, seen)
		if got > quota {
			t.Errorf("round %d: upstream saw %d requests of a key with a quota of %d", round+1, got, quota)
		}
		// Never less either: once the spell's late answers have landed
		// (places of requests whose answer was lost given back, spares
		// given back or rescored), the key counts exactly what the
		// upstream saw.
		var counted int
		if _, ok := e2eproc.WaitFor(15*time.Second, func() bool {
			counted = used(t, b, key)
			return counted == got
		}); !ok {
			t.Errorf("round %d: the key counts %d requests, the upstream saw %d", round+1, counted, got)
		}
	}
}

// used is the key's sonnet count from GET /v1/usage.
func used(t *testing.T, s *e2eproc.Serve, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/usage", nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Families map[string]struct {
			Used *int `json:"used"`
		} `json:"families"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Families["sonnet"].Used == nil {
		t.Fatalf("usage of a key: %d %v", resp.StatusCode, err)
	}
	return *out.Families["sonnet"].Used
}
