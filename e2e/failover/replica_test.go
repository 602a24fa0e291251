//go:build failover

package failover

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/e2eproc"
	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// instance is one `claude-route serve` process.
type instance struct{ *e2eproc.Serve }

func startServe(t *testing.T, bin string, port int, env []string) *instance {
	return &instance{e2eproc.StartServe(t, bin, port, env)}
}

func (in *instance) adminJSON(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, in.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

func (in *instance) slots(t *testing.T) map[string]int {
	var out struct {
		Accounts []struct {
			Name      string `json:"name"`
			SlotsUsed int    `json:"slots_used"`
		} `json:"accounts"`
	}
	if st := in.adminJSON(t, http.MethodGet, "/admin/api/accounts", "", &out); st != http.StatusOK {
		t.Fatalf("accounts: %d", st)
	}
	m := map[string]int{}
	for _, a := range out.Accounts {
		m[a.Name] = a.SlotsUsed
	}
	return m
}

// used is the key's sonnet quota count, from GET /v1/usage.
func (in *instance) used(t *testing.T, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, in.URL+"/v1/usage", nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
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

func message(url, key string, stream bool) (*http.Response, error) {
	body := fmt.Sprintf(`{"model":"claude-sonnet-4-5","max_tokens":16,"stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	return http.DefaultClient.Do(req)
}

// TestReplicaDiesMidStream runs two serve processes on one Redis, SIGKILLs
// one while it carries streams of every key, and checks that the other
// serves every key and that nothing the dead one held is lost or leaked:
// the dead replica's counted requests stay counted (each had begun an
// answer, and a place is given back only when no answer was produced),
// its concurrency places come back (leases expire) and slots do not move.
func TestReplicaDiesMidStream(t *testing.T) {
	e2eproc.RequireRedis(t)
	dir := t.TempDir()
	pt := e2eproc.NewPorts(t)
	rport := pt.Get()
	e2eproc.StartRedis(t, dir, rport)
	fake := fakeupstream.Start(fakeupstream.Options{ChunkDelay: 100 * time.Millisecond, Chunks: 600})
	defer fake.Close()
	acct, prod := t.TempDir(), t.TempDir()
	for _, a := range []struct{ tier, name string }{{"high", "h1"}, {"high", "h2"}, {"trial", "t1"}} {
		key := "sk-ant-api03-" + a.name
		fake.AddAPIKey(key)
		if err := os.MkdirAll(filepath.Join(acct, a.tier), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(acct, a.tier, a.name+".json"), []byte(`{"apiKey":"`+key+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"REDIS_URL=redis://" + e2eproc.Addr(rport), "ACCOUNT_DIR=" + acct, "PRODUCT_DIR=" + prod,
		"UPSTREAM_URL=" + fake.URL(), "OAUTH_TOKEN_URL=" + fake.TokenURL(), "ADMIN_TOKEN=" + adminToken,
		"LOG_LEVEL=info", "SHUTDOWN_GRACE=1s"}
	bin := e2eproc.BuildBinary(t)
	a := startServe(t, bin, pt.Get(), env)
	b := startServe(t, bin, pt.Get(), env)

	var keys []string
	for _, tier := range []string{"high", "high", "high", "trial"} {
		var out struct {
			Key string `json:"key"`
		}
		if st := a.adminJSON(t, http.MethodPost, "/admin/api/keys", `{"tier":"`+tier+`"}`, &out); st != http.StatusCreated {
			t.Fatalf("issue %s: %d", tier, st)
		}
		keys = append(keys, out.Key)
	}
	// A carries streams: four of the first key (a high key's whole
	// concurrency), one of each other key.
	perKey := []int{4, 1, 1, 1}
	ended := make(chan error, 8)
	for i, k := range keys {
		for j := 0; j < perKey[i]; j++ {
			resp, err := message(a.URL, k, true)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("stream %d of key %d on A: %v %v", j, i, err, resp)
			}
			br := bufio.NewReader(resp.Body)
			if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "event:") {
				t.Fatalf("stream did not start: %q %v", line, err)
			}
			go func() {
				_, err := io.Copy(io.Discard, br)
				resp.Body.Close()
				ended <- err
			}()
		}
	}
	slotsBefore := b.slots(t)
	usedBefore := make([]int, len(keys))
	for i, k := range keys {
		usedBefore[i] = b.used(t, k)
		if usedBefore[i] != perKey[i] {
			t.Fatalf("key %d: %d counted before the kill, want %d", i, usedBefore[i], perKey[i])
		}
	}

	a.Kill()
	for i := 0; i < 7; i++ {
		select {
		case err := <-ended:
			if err == nil {
				t.Fatal("a stream of the killed replica ended cleanly")
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a stream of the killed replica hangs")
		}
	}

	// B serves every key; the first key waits at most until the dead
	// replica's leases have expired.
	start := time.Now()
	for i, k := range keys {
		got := 0
		if _, ok := e2eproc.WaitFor(70*time.Second, func() bool {
			resp, err := message(b.URL, k, false)
			if err != nil {
				return false
			}
			resp.Body.Close()
			got = resp.StatusCode
			return got == http.StatusOK
		}); !ok {
			t.Fatalf("key %d refused by the surviving replica: %d", i, got)
		}
	}
	t.Logf("every key served by the surviving replica %.2f s after the kill", time.Since(start).Seconds())
	for i, k := range keys {
		// Every refused try above was refunded (no answer), so exactly one
		// more request counts.
		if got := b.used(t, k); got != usedBefore[i]+1 {
			t.Errorf("key %d: %d counted after the kill, want %d", i, got, usedBefore[i]+1)
		}
	}
	if after := b.slots(t); fmt.Sprint(after) != fmt.Sprint(slotsBefore) {
		t.Errorf("slots moved: before %v, after %v", slotsBefore, after)
	}
}
