package server

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/store"
)

// keyUsage reads the key's own view: the sonnet quota count and the
// request total of its usage.
func keyUsage(t *testing.T, url, key string) (used, requests int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/usage", nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Families map[string]struct {
			Used int `json:"used"`
		} `json:"families"`
		Tokens struct {
			Total struct {
				Requests int `json:"requests"`
			} `json:"total"`
		} `json:"tokens"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("usage: %d %v", resp.StatusCode, err)
	}
	return out.Families["sonnet"].Used, out.Tokens.Total.Requests
}

// A store whose replies come late (450 ms, past the client's read timeout)
// at random moments still runs every command it receives. 100 requests
// through it leave the quota count and the usage total exactly at the
// number of answers served: no write ran twice, and every place taken by a
// request that then failed was given back.
func TestSlowStoreCountsExactly(t *testing.T) {
	if testenv.IsCluster() {
		t.Skip("the slow proxy fronts one server; the unit stage runs this")
	}
	base := testenv.RedisURL(t, 7)
	o, err := store.ParseURL(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewSlowProxy(t, o.Addrs[0], 0)
	db := base[strings.LastIndexByte(base, '/'):]
	e := newEnv(t, withRedis("redis://"+proxy.Addr()+db))
	e.apiAccount("supreme", "s1")
	url := e.start()
	key := e.issue("supreme") // sonnet: 75 per window, so some of 100 are refused

	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for slow := true; ; slow = !slow {
			if slow {
				proxy.SetDelay(450 * time.Millisecond)
			} else {
				proxy.SetDelay(0)
			}
			select {
			case <-stop:
				proxy.SetDelay(0)
				return
			case <-time.After(time.Duration(100+rand.IntN(400)) * time.Millisecond):
			}
		}
	}()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
				// Spread the requests over several slow and fast spells.
				time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
			}
		}()
	}
	for range 100 {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	close(stop)
	<-flipped
	served := statuses[http.StatusOK]
	t.Logf("answers: %v", statuses)
	if statuses[http.StatusServiceUnavailable] == 0 {
		t.Fatal("no request met the slow store: the test proves nothing")
	}
	if n := e.fake.MessageCount(); n != served {
		t.Fatalf("upstream saw %d requests, %d were served", n, served)
	}
	// Give-backs run in the background and usage is flushed once a second.
	var used, requests int
	deadline := time.Now().Add(15 * time.Second)
	for {
		used, requests = keyUsage(t, url, key)
		if (used == served && requests == served) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if used != served || requests != served {
		t.Fatalf("served %d: quota count %d, usage requests %d (statuses %v)", served, used, requests, statuses)
	}
}

// A request whose store replies come 450 ms late, past the store client's
// 400 ms read timeout: production's deadlines answer 503 (what a loaded
// machine did to TestKeyLifecycleAdminAPI once), the harness's storeSlack
// serves it. Worlds on the shared test store have storeSlack, so their
// tests do not assume a machine fast enough for production's deadlines.
func TestStoreSlackRidesOutLateReplies(t *testing.T) {
	if testenv.IsCluster() {
		t.Skip("the slow proxy fronts one server; the unit stage runs this")
	}
	tests := []struct {
		name string
		opts []envOpt
		want int
	}{
		{"production's deadlines", nil, http.StatusServiceUnavailable},
		{"the harness's slack", []envOpt{withStoreSlack()}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := testenv.RedisURL(t, 7)
			o, err := store.ParseURL(base)
			if err != nil {
				t.Fatal(err)
			}
			proxy := testenv.NewSlowProxy(t, o.Addrs[0], 0)
			e := newEnv(t, append(tc.opts, withRedis("redis://"+proxy.Addr()+base[strings.LastIndexByte(base, '/'):]))...)
			e.apiAccount("high", "h1")
			url := e.start()
			key := e.issue("high") // not used yet: its first request reads the store
			proxy.SetDelay(450 * time.Millisecond)
			r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
			proxy.SetDelay(0)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.status, tc.want, r.body)
			}
		})
	}
}
