package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/app"
	"github.com/claude-route/claude-route/tiers"
)

// A sync re-reads TIERS_FILE: the key keeps its binding and its next
// request is held to the new limit, on the replica that ran the sync and
// on the others; a file that does not load keeps the table in service and
// says why in the sync's report and the log.
func TestTiersReloadBySync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiers.json")
	writeTiers := func(quota string) {
		t.Helper()
		body := `{"tiers":[{"name":"trial","slots":7,"families":["sonnet"],"quotas":{"sonnet":` + quota + `}}]}`
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeTiers("1")
	table, err := tiers.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withApp(func(c *app.Config) { c.TiersFile = path }))
	e.tiers = table
	e.apiAccount("trial", "t1")
	e.apiAccount("trial", "t2")
	u0, u1 := e.start(), e.start()
	key := e.issue("trial")
	ask := func(url string) int {
		t.Helper()
		return post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)).status
	}
	if a, b := ask(u0), ask(u0); a != 200 || b != 429 {
		t.Fatalf("quota 1: %d then %d, want 200 then 429", a, b)
	}
	bound := e.boundTo(key)

	writeTiers("3")
	if rep := e.sync(); rep["tiers_reloaded"] != true || rep["tiers_error"] != nil {
		t.Fatalf("sync report: %v", rep)
	}
	if st := ask(u0); st != 200 {
		t.Fatalf("after the reload, the next request: %d, want 200 (quota 3)", st)
	}
	if got := e.boundTo(key); got != bound {
		t.Fatalf("binding moved from %s to %s", bound, got)
	}
	// The other replica follows the sync it did not run.
	deadline := time.Now().Add(5 * time.Second)
	for sonnetLimit(t, u1, key) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the second replica never took the new table:\n%s", e.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a, b := ask(u1), ask(u1); a != 200 || b != 429 {
		t.Fatalf("second replica at 2/3: %d then %d, want 200 then 429", a, b)
	}

	if err := os.WriteFile(path, []byte(`{"tiers":[{"name":"trial","slots":0}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := e.sync()
	if msg, _ := rep["tiers_error"].(string); !strings.Contains(msg, "slots") || !strings.Contains(msg, "previous table stays") {
		t.Fatalf("an invalid file's sync report: %v", rep)
	}
	if !strings.Contains(e.logs.String(), "TIERS_FILE not reloaded") {
		t.Fatal("the invalid file is not in the log")
	}
	for _, u := range []string{u0, u1} {
		if got := sonnetLimit(t, u, key); got != 3 {
			t.Fatalf("an invalid file changed the limit to %d", got)
		}
	}
}

// sonnetLimit is the key's sonnet quota as its own /v1/usage shows it.
func sonnetLimit(t *testing.T, url, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/usage", nil)
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Families map[string]struct{ Limit int } `json:"families"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(fmt.Errorf("/v1/usage: %w", err))
	}
	return out.Families["sonnet"].Limit
}
