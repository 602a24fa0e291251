//go:build failover

package failover

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/e2eproc"
	"github.com/claude-route/claude-route/internal/fakeupstream"
)

const adminToken = "failover-admin-token-0123456789"

// proxy is one `claude-route serve` process (on a port of pt) in front of
// the store under test, with a fake upstream, one high account and one
// issued high key; it asks for haiku, which high does not count, so probes
// never run out of quota.
type proxy struct {
	url string
	key string
}

func startProxy(t *testing.T, pt *e2eproc.Ports, redisURL string) *proxy {
	t.Helper()
	fake := fakeupstream.Start(fakeupstream.Options{})
	t.Cleanup(fake.Close)
	acct, prod := t.TempDir(), t.TempDir()
	fake.AddAPIKey("sk-ant-api03-failover")
	if err := os.MkdirAll(filepath.Join(acct, "high"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(acct, "high", "h1.json"), []byte(`{"apiKey":"sk-ant-api03-failover"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"REDIS_URL=" + redisURL, "ACCOUNT_DIR=" + acct, "PRODUCT_DIR=" + prod,
		"UPSTREAM_URL=" + fake.URL(), "OAUTH_TOKEN_URL=" + fake.TokenURL(), "OAUTH_CLIENT_ID=" + fakeupstream.ClientID,
		"ADMIN_TOKEN=" + adminToken, "SYNC_INTERVAL=1h", "SHUTDOWN_GRACE=2s", "LOG_LEVEL=info"}
	srv := e2eproc.StartServe(t, e2eproc.BuildBinary(t), pt.Get(), env)
	p := &proxy{url: srv.URL}
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/admin/api/keys", strings.NewReader(`{"tier":"high"}`))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var out struct {
				Key string `json:"key"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated && out.Key != "" {
				p.key = out.Key
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("could not issue a key through the proxy (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := p.call(); st != http.StatusOK {
		t.Fatalf("proxy before the fault: %d", st)
	}
	return p
}

var client = &http.Client{Timeout: 5 * time.Second}

// call sends one counted request and returns its status (0: no answer).
func (p *proxy) call() int {
	body := `{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest(http.MethodPost, p.url+"/v1/messages", bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", p.key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// outcome is one request's answer, when it was sent and when it came.
type outcome struct {
	sent, at time.Time
	status   int
}

// prober sends requests back to back from a few goroutines until stopped.
type prober struct {
	mu   sync.Mutex
	seen []outcome
	stop chan struct{}
	wg   sync.WaitGroup
}

func (p *proxy) probe(workers int) *prober {
	pr := &prober{stop: make(chan struct{})}
	for i := 0; i < workers; i++ {
		pr.wg.Add(1)
		go func() {
			defer pr.wg.Done()
			for {
				select {
				case <-pr.stop:
					return
				default:
				}
				sent := time.Now()
				st := p.call()
				pr.mu.Lock()
				pr.seen = append(pr.seen, outcome{sent, time.Now(), st})
				pr.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return pr
}

// firstOKAfter waits up to limit for a 200 to a request sent after t0 and
// returns when it was answered.
func (pr *prober) firstOKAfter(t0 time.Time, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		pr.mu.Lock()
		for _, o := range pr.seen {
			if o.status == http.StatusOK && o.sent.After(t0) {
				pr.mu.Unlock()
				return o.at, true
			}
		}
		pr.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return time.Time{}, false
}

func (pr *prober) close() {
	close(pr.stop)
	pr.wg.Wait()
}

func (pr *prober) summary(since time.Time) string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	counts := map[int]int{}
	for _, o := range pr.seen {
		if o.sent.After(since) {
			counts[o.status]++
		}
	}
	return fmt.Sprint(counts)
}
