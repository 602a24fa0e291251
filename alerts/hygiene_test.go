package alerts

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
)

// A flap within the dedup period (blacklisted → recovered → blacklisted)
// sends all three, once each across two replicas; a repeat of the same
// state is still dropped.
func TestFlapSendsEveryStateChange(t *testing.T) {
	rcv := newReceiver(t, 0)
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	a := New(testenv.Redis(t, 13), Config{URL: rcv.srv.URL, Clock: clk})
	b := New(testenv.Redis(t, 13), Config{URL: rcv.srv.URL, Clock: clk})
	runSender(t, a)
	runSender(t, b)
	snap := func(bl map[string]accounts.BlacklistEntry) *snapshot {
		return &snapshot{bl: bl, limited: map[string]time.Time{}, cooling: map[string]time.Time{},
			tier: map[string]tierLoad{}, acctTier: map[string]string{"o1": "high"}}
	}
	t0 := clk.Now()
	states := []*snapshot{
		snap(map[string]accounts.BlacklistEntry{}),
		snap(map[string]accounts.BlacklistEntry{"o1": {Reason: "invalid bearer token", Since: t0}}),
		snap(map[string]accounts.BlacklistEntry{}),
		snap(map[string]accounts.BlacklistEntry{"o1": {Reason: "invalid bearer token", Since: t0.Add(3 * time.Minute)}}),
	}
	want := []string{AccountBlacklisted, AccountRecovered, AccountBlacklisted}
	for i := 1; i < len(states); i++ {
		clk.Advance(time.Minute) // all within the 15 minutes
		for _, e := range diff(states[i-1], states[i]) {
			a.Emit(e) // both replicas see every change
			b.Emit(e)
		}
		waitFor(t, want[i-1], func() bool { got, _ := rcv.events(); return len(got) >= i })
	}
	// The same blacklisting seen again (a replica that read late) is a
	// repeat: dropped. A marker shows the sender has gone past it.
	for _, e := range diff(states[0], states[3]) {
		a.Emit(e)
	}
	a.Emit(Event{Event: StoreBack, Text: "marker"})
	waitFor(t, "the marker", func() bool { got, _ := rcv.events(); return len(got) >= 4 })
	got, _ := rcv.events()
	var names []string
	for _, e := range got {
		names = append(names, e.Event)
	}
	if strings.Join(names, ",") != strings.Join(append(want, StoreBack), ",") {
		t.Fatalf("sent %v, want %v then the marker", names, want)
	}
}

// The body carries the text as Slack reads it (text) and as Discord does
// (content).
func TestPayloadHasTextAndContent(t *testing.T) {
	bodies := make(chan map[string]any, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		bodies <- m
	}))
	defer srv.Close()
	s := New(testenv.Redis(t, 13), Config{URL: srv.URL})
	if _, err := s.Send(context.Background(), Event{Event: Test, Text: "hello operator"}); err != nil {
		t.Fatal(err)
	}
	m := <-bodies
	if m["text"] != "hello operator" || m["content"] != "hello operator" {
		t.Fatalf("body %v: want text and content", m)
	}
}

// A webhook that answers with a redirect is a failed post: the alert never
// goes where the redirect points.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer hook.Close()
	s := New(testenv.Redis(t, 13), Config{URL: hook.URL, Client: &http.Client{}})
	_, err := s.Send(context.Background(), Event{Event: Test, Text: "x"})
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Fatalf("post through a redirect: %v, want a failure naming the 307", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect was followed (%d posts elsewhere)", n)
	}
}

// A webhook that hangs on one alert does not hold the next: each post has
// its own timeout.
func TestHungWebhookDoesNotDelayOthers(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var e Event
		_ = json.Unmarshal(b, &e)
		if e.Account == "slow" {
			select { // hangs until the test ends or the post gives up
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		arrived <- e.Account
	}))
	defer srv.Close()
	defer close(release)
	s := New(testenv.Redis(t, 13), Config{URL: srv.URL, PostTimeout: 5 * time.Second})
	runSender(t, s)
	start := time.Now()
	s.Emit(Event{Event: AccountCooling, Account: "slow", Text: "slow"})
	s.Emit(Event{Event: AccountCooling, Account: "fast", Text: "fast"})
	select {
	case got := <-arrived:
		if got != "fast" {
			t.Fatalf("got %q", got)
		}
		if d := time.Since(start); d >= 5*time.Second {
			t.Fatalf("the second alert waited %s, the hung one's timeout", d)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("the second alert waited for the hung webhook")
	}
}
