package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/alerts"
)

// hook is a local webhook receiver; it answers the first fail posts 500.
type hook struct {
	mu    sync.Mutex
	got   []alerts.Event
	tries int
	fail  int
}

func newHook(t *testing.T, fail int) (*hook, string) {
	h := &hook{fail: fail}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.tries++
		if h.tries <= h.fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var e alerts.Event
		_ = json.Unmarshal(b, &e)
		h.got = append(h.got, e)
	}))
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hook) of(event string) []alerts.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []alerts.Event
	for _, e := range h.got {
		if e.Event == event {
			out = append(out, e)
		}
	}
	return out
}

func (h *hook) waitFor(t *testing.T, event string, n int) {
	t.Helper()
	for i := 0; i < 1000 && len(h.of(event)) < n; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := len(h.of(event)); got < n {
		t.Fatalf("%d %s events, want %d", got, event, n)
	}
}

// waitWatching waits until every instance's watcher has its baseline, so
// each of them sees the change that follows.
func (e *env) waitWatching() {
	e.t.Helper()
	for _, a := range e.apps {
		select {
		case <-a.Watcher.Ready():
		case <-time.After(10 * time.Second):
			e.t.Fatal("watcher never read the pool")
		}
	}
}

// TestAlertOncePerBlacklistingAcrossReplicas: two replicas share a real
// Redis and both watch the pool; one blacklisting reaches the webhook
// once, with the body a chat webhook shows as is, and the dashboard's
// list has it once.
func TestAlertOncePerBlacklistingAcrossReplicas(t *testing.T) {
	h, url := newHook(t, 0)
	e := newEnv(t, withAlerts(url))
	e.apiAccount("high", "h1")
	e.apiAccount("high", "h2")
	e.start()
	e.start()
	e.waitWatching()
	if st := e.admin(http.MethodPost, "/admin/api/accounts/h1/blacklist", map[string]string{"reason": "invalid bearer token"}, nil); st != 200 {
		t.Fatalf("blacklist: %d", st)
	}
	h.waitFor(t, alerts.AccountBlacklisted, 1)
	// Both watchers have seen the change after a few more reads; a
	// duplicate would have arrived by the time the recovery does.
	time.Sleep(200 * time.Millisecond)
	if st := e.admin(http.MethodPost, "/admin/api/accounts/h1/recover", nil, nil); st != 200 {
		t.Fatalf("recover: %d", st)
	}
	h.waitFor(t, alerts.AccountRecovered, 1)
	time.Sleep(200 * time.Millisecond)
	bl := h.of(alerts.AccountBlacklisted)
	if len(bl) != 1 || len(h.of(alerts.AccountRecovered)) != 1 {
		t.Fatalf("blacklisted %d times, recovered %d times; want once each", len(bl), len(h.of(alerts.AccountRecovered)))
	}
	if ev := bl[0]; ev.Account != "h1" || ev.Tier != "high" || ev.Text == "" || ev.Details["reason"] != "invalid bearer token" || ev.At.IsZero() {
		t.Fatalf("event %+v", ev)
	}
	var list struct {
		Alerts  []alerts.Event `json:"alerts"`
		Webhook bool           `json:"webhook"`
	}
	if st := e.admin(http.MethodGet, "/admin/api/alerts", nil, &list); st != 200 || !list.Webhook || len(list.Alerts) != 2 ||
		list.Alerts[0].Event != alerts.AccountRecovered || list.Alerts[1].Event != alerts.AccountBlacklisted {
		t.Fatalf("recent alerts: %d %+v", st, list)
	}
}

// TestAlertRetriedAfter500: the receiver answers 500 once; the event comes
// again after the backoff and is taken.
func TestAlertRetriedAfter500(t *testing.T) {
	h, url := newHook(t, 1)
	e := newEnv(t, withAlerts(url))
	e.apiAccount("trial", "t1")
	e.start()
	e.waitWatching()
	// trial has 7 slots per account: the 7th key fills the tier.
	for range 7 {
		e.issue("trial", "t1")
	}
	h.waitFor(t, alerts.TierFull, 1)
	h.mu.Lock()
	tries := h.tries
	h.mu.Unlock()
	if tries < 2 {
		t.Fatalf("%d posts, want the refused one and its retry", tries)
	}
	if ev := h.of(alerts.TierFull)[0]; ev.Tier != "trial" || ev.Details["slots_used"] != float64(7) || ev.Details["slots_total"] != float64(7) {
		t.Fatalf("event %+v", ev)
	}
}

// TestAlertTestCommand: the admin API sends a test event at once.
func TestAlertTestCommand(t *testing.T) {
	h, url := newHook(t, 0)
	e := newEnv(t, withAlerts(url))
	e.start()
	if st := e.admin(http.MethodPost, "/admin/api/alerts/test", nil, nil); st != 200 {
		t.Fatalf("test alert: %d", st)
	}
	if got := h.of(alerts.Test); len(got) != 1 || got[0].Text == "" {
		t.Fatalf("test events %+v", got)
	}
	e2 := newEnv(t)
	e2.start()
	if st := e2.admin(http.MethodPost, "/admin/api/alerts/test", nil, nil); st != http.StatusBadRequest {
		t.Fatalf("test alert without a webhook: %d, want 400", st)
	}
}
