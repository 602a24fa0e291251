package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/app"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

var msgID = regexp.MustCompile(`msg_[A-Za-z0-9]+`)

func TestPlainAndStreamedRequestsReachUpstreamWithTheAccountCredential(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("trial", "t1")
	access, _ := e.oauthAccount("high", "h1", time.Now().Add(8*time.Hour))
	url := e.start()
	trialKey, highKey := e.issue("trial"), e.issue("high")

	cases := []struct {
		name, key, model string
		stream           bool
		hdr              []string
		wantCred         string
		wantBeta         []string
	}{
		{"api key plain", trialKey, "claude-sonnet-4-5-20250929", false, []string{"User-Agent", "claude-cli/2.0.1 (external, cli)", "X-Stainless-Lang", "js"}, apiKey, nil},
		{"api key stream", trialKey, "claude-sonnet-4-5-20250929", true, nil, apiKey, nil},
		{"oauth plain, client betas merged", highKey, "claude-opus-4-1-20250805", false, []string{"Anthropic-Beta", "fine-grained-tool-streaming-2025-05-14, oauth-2025-04-20"}, access, []string{"fine-grained-tool-streaming-2025-05-14", "oauth-2025-04-20"}},
		{"oauth stream via bearer", highKey, "claude-haiku-4-5-20251001", true, []string{"Authorization", "Bearer " + highKey}, access, []string{"oauth-2025-04-20"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.fake.Reset()
			key := c.key
			if len(c.hdr) > 0 && c.hdr[0] == "Authorization" {
				key = ""
			}
			r := post(t, url, "/v1/messages?beta=true", key, msgBody(c.model, c.stream), c.hdr...)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			reqs := e.fake.Requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream saw %d requests", len(reqs))
			}
			up := reqs[0]
			if up.Credential != c.wantCred || up.RawQuery != "beta=true" {
				t.Fatalf("upstream credential/query wrong: query %q", up.RawQuery)
			}
			for k, vv := range up.Header {
				for _, v := range vv {
					if strings.Contains(v, c.key) {
						t.Fatalf("client key leaked upstream in %s", k)
					}
				}
			}
			if up.Header.Get("Anthropic-Version") != "2023-06-01" {
				t.Errorf("anthropic-version not passed through")
			}
			for i := 0; i+1 < len(c.hdr); i += 2 {
				if c.hdr[i] != "Authorization" && c.hdr[i] != "Anthropic-Beta" && up.Header.Get(c.hdr[i]) != c.hdr[i+1] {
					t.Errorf("header %s not passed through as sent", c.hdr[i])
				}
			}
			if c.wantBeta != nil {
				if got := up.Header.Get("Anthropic-Beta"); got != strings.Join(c.wantBeta, ",") {
					t.Errorf("anthropic-beta = %q, want %q", got, strings.Join(c.wantBeta, ","))
				}
			} else if up.Header.Get("Anthropic-Beta") != "" {
				t.Errorf("API-key accounts get no beta added")
			}
			if r.header.Get("Request-Id") == "" {
				t.Errorf("request-id not passed back")
			}
			if string(up.Body) != msgBody(c.model, c.stream) {
				t.Errorf("body rewritten")
			}
			if c.stream {
				// The client's bytes are exactly what the upstream sends for
				// this request (ids aside, which the fake draws at random).
				direct := directStream(t, e.fake.URL(), c.wantCred, c.model, up.Header)
				if msgID.ReplaceAllString(string(r.body), "msg_X") != msgID.ReplaceAllString(direct, "msg_X") {
					t.Fatalf("stream bytes differ:\nproxy:  %q\ndirect: %q", r.body, direct)
				}
			}
		})
	}
}

func directStream(t *testing.T, base, cred, model string, hdr http.Header) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/messages", strings.NewReader(msgBody(model, true)))
	req.Header = hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestFirstEventArrivesBeforeUpstreamFinishes(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	hold := make(chan struct{})
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Hold: hold})
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(msgBody("claude-sonnet-4-5", true)))
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content-type %q", ct)
	}
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "event: message_start\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not reach the client while the upstream held the rest")
	}
	close(hold)
	rest, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(rest), "event: message_stop") {
		t.Fatalf("stream did not finish: %q", rest)
	}
}

func TestErrorRows(t *testing.T) {
	fc := clock.NewFake(time.Now())
	e := newEnv(t, withClock(fc))
	e.apiAccount("trial", "t1")
	e.apiAccount("medium", "m1")
	url := e.start()
	trial := e.issue("trial")
	revoked := e.issue("trial")
	if st := e.admin(http.MethodDelete, "/admin/api/keys/"+keyIDOf(revoked), nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: %d", st)
	}
	expiring := e.issue("medium")
	sonnet := msgBody("claude-sonnet-4-5-20250929", false)
	cases := []struct {
		name, key, body, ctype string
		hdr                    []string
		status                 int
		typ, msg               string
	}{
		{"no key", "", sonnet, "", nil, 401, "authentication_error", "Unauthorized API key"},
		{"unknown key", "sk-cli-v1-" + strings.Repeat("A", 32), sonnet, "", nil, 401, "authentication_error", "Unauthorized API key"},
		{"revoked key", revoked, sonnet, "", nil, 401, "authentication_error", "Unauthorized API key"},
		{"bad format: short", "sk-cli-v1-abc", sonnet, "", nil, 401, "authentication_error", "Invalid API key format"},
		{"bad format: wrong alphabet", "sk-cli-v1-" + strings.Repeat("_", 32), sonnet, "", nil, 401, "authentication_error", "Invalid API key format"},
		{"bad format: other prefix", "sk-ant-api03-" + strings.Repeat("A", 32), sonnet, "", nil, 401, "authentication_error", "Invalid API key format"},
		{"trial asks opus", trial, msgBody("claude-opus-4-1-20250805", false), "", nil, 403, "permission_error", "can only use Sonnet models"},
		{"trial asks haiku", trial, msgBody("claude-haiku-4-5", false), "", nil, 403, "permission_error", "Trial tier can only use Sonnet models"},
		// Issue 24: Claude Code shows a 403 as "Failed to authenticate", so
		// the message names the fix.
		{"tier refusal names the fix", trial, msgBody("claude-opus-4-1-20250805", false), "", nil, 403, "permission_error",
			"Trial tier can only use Sonnet models. Pick a permitted model: set ANTHROPIC_MODEL=sonnet, or pass --model sonnet in Claude Code"},
		{"malformed json", trial, `{"model": "claude-sonnet-4-5",`, "", nil, 400, "invalid_request_error", "not valid JSON"},
		{"missing model", trial, `{"max_tokens":5,"messages":[]}`, "", nil, 400, "invalid_request_error", "model"},
		// Issue 12: the upstream reads "model" exactly; a case variant must
		// not let a trial key's Sonnet-only rule check another model.
		{"case-variant model", trial, `{"model":"claude-opus-4-1","Model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}`, "", nil, 400, "invalid_request_error", "case variant"},
		{"duplicate model", trial, `{"model":"claude-sonnet-4-5","model":"claude-opus-4-1","max_tokens":5,"messages":[]}`, "", nil, 400, "invalid_request_error", "more than once"},
		{"wrong content type", trial, sonnet, "text/plain", nil, 400, "invalid_request_error", "Content-Type"},
		{"not utf-8", trial, "{\"model\":\"claude-sonnet-4\xff\"}", "", nil, 400, "invalid_request_error", "UTF-8"},
		{"too large", trial, `{"model":"claude-sonnet-4-5","pad":"` + strings.Repeat("x", 33<<20) + `"}`, "", nil, 413, "request_too_large", "maximum size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := c.hdr
			if c.ctype != "" {
				hdr = append(hdr, "Content-Type", c.ctype)
			}
			r := post(t, url, "/v1/messages", c.key, c.body, hdr...)
			if r.status != c.status || r.errType() != c.typ || !strings.Contains(r.errMessage(), c.msg) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", r.status, r.errType(), r.errMessage(), c.status, c.typ, c.msg)
			}
		})
	}
	// Expiry: a medium key lives 30 days.
	if r := post(t, url, "/v1/messages", expiring, sonnet); r.status != http.StatusOK {
		t.Fatalf("fresh medium key: %d %s", r.status, r.body)
	}
	fc.Advance(30*24*time.Hour + time.Second)
	r := post(t, url, "/v1/messages", expiring, sonnet)
	if r.status != 401 || r.errType() != "authentication_error" || !strings.Contains(r.errMessage(), "expired") {
		t.Fatalf("expired key: %d %s", r.status, r.body)
	}
	// The service keeps serving after all that.
	if r := post(t, url, "/v1/messages", trial, sonnet); r.status != 401 && r.status != http.StatusOK {
		t.Fatalf("after bad input: %d", r.status)
	}
}

func TestCapacityErrors(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("supreme", "s1") // 2 slots
	url := e.start()
	sonnet := msgBody("claude-sonnet-4-5", false)
	for i := 0; i < 2; i++ {
		if r := post(t, url, "/v1/messages", e.issue("supreme"), sonnet); r.status != 200 {
			t.Fatalf("key %d: %d %s", i, r.status, r.body)
		}
	}
	r := post(t, url, "/v1/messages", e.issue("supreme"), sonnet)
	if r.status != 503 || r.errType() != "overloaded_error" || r.errMessage() != "All Supreme accounts are at capacity" {
		t.Fatalf("full: %d %s", r.status, r.body)
	}
	r = post(t, url, "/v1/messages", e.issue("medium"), sonnet)
	if r.status != 503 || r.errType() != "overloaded_error" || r.errMessage() != "No Medium accounts available in pool" {
		t.Fatalf("empty: %d %s", r.status, r.body)
	}
}

// TestTwoInstancesNeverOversell: two proxies share the store; 15 fresh
// keys' first requests race for 2 accounts × 7 slots.
func TestTwoInstancesNeverOversell(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "a1")
	e.apiAccount("trial", "a2")
	u1, u2 := e.start(), e.start()
	keys := make([]string, 15)
	for i := range keys {
		keys[i] = e.issue("trial")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	start := make(chan struct{})
	for i, k := range keys {
		wg.Add(1)
		go func(i int, k string) {
			defer wg.Done()
			<-start
			url := u1
			if i%2 == 1 {
				url = u2
			}
			r := post(t, url, "/v1/messages", k, msgBody("claude-sonnet-4-5", false))
			mu.Lock()
			statuses[r.status]++
			mu.Unlock()
			if r.status == 503 && r.errMessage() != "All Trial accounts are at capacity" {
				t.Errorf("503 message %q", r.errMessage())
			}
		}(i, k)
	}
	close(start)
	wg.Wait()
	if statuses[200] != 14 || statuses[503] != 1 {
		t.Fatalf("statuses %v, want 14×200 and 1×503", statuses)
	}
	var pool struct {
		Tiers []struct {
			Tier     string
			Accounts []struct {
				Name      string
				SlotsUsed int `json:"slots_used"`
				BoundKeys int `json:"bound_keys"`
			}
		}
	}
	e.admin(http.MethodGet, "/admin/api/pool?tier=trial", nil, &pool)
	for _, a := range pool.Tiers[0].Accounts {
		if a.SlotsUsed != 7 || a.BoundKeys != 7 {
			t.Fatalf("account %s: %d slots, %d keys", a.Name, a.SlotsUsed, a.BoundKeys)
		}
	}
}

func TestBlacklistMovesKeyWithinTheSameRequestAndRecoverReturnsAccount(t *testing.T) {
	e := newEnv(t)
	k1 := e.apiAccount("high", "a1")
	e.apiAccount("high", "a2")
	url := e.start()
	key := e.issue("high", "a1")
	e.fake.InjectFault(k1, fakeupstream.Fault{Status: 401, ErrorType: "authentication_error", Message: "invalid x-api-key"})
	r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != 200 {
		t.Fatalf("the retry on a new account must hide the failure: %d %s", r.status, r.body)
	}
	if !strings.Contains(e.logs.String(), "Adding a1 to blacklist") {
		t.Errorf("missing blacklist log line")
	}
	acc := e.accountViews()
	for _, a := range acc {
		if a.Name == "a1" && (a.Blacklist == nil || a.BoundKeys != 0) {
			t.Fatalf("a1 must be blacklisted with no keys: %+v", a)
		}
		if a.Name == "a2" && a.BoundKeys != 1 {
			t.Fatalf("the key must now be on a2: %+v", a)
		}
	}
	// A 529 or 5xx never blacklists.
	e.fake.InjectFault("", fakeupstream.Fault{Status: 529})
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 529 {
		t.Fatalf("529 passes through: %d", r.status)
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/a1/recover", nil, nil); st != 200 {
		t.Fatalf("recover: %d", st)
	}
	// New keys may bind to a1 again; a2 has 1, a1 has 0 → least-loaded is a1.
	k2 := e.issue("high")
	if r := post(t, url, "/v1/messages", k2, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatal(r.status)
	}
	acc = e.accountViews()
	for _, a := range acc {
		if a.Name == "a1" && (a.Blacklist != nil || a.BoundKeys != 1) {
			t.Fatalf("recovered a1 must take the new key: %+v", a)
		}
	}
}

// With overflow off (an operator selling dedicated accounts), a limited
// account's keys wait for its reset, as before overflow existed.
func TestUpstreamUsageLimitMarksAccountAndKeepsBinding(t *testing.T) {
	e := newEnv(t)
	off := false
	tr, _ := e.tiers.Get("high")
	tr.Overflow = &off
	k1 := e.apiAccount("high", "a1")
	e.apiAccount("high", "a2")
	url := e.start()
	key := e.issue("high", "a1")
	reset := time.Now().Add(90 * time.Minute).Unix()
	e.fake.InjectFault(k1, fakeupstream.Fault{Status: 429, Headers: map[string]string{
		"anthropic-ratelimit-unified-status": "rejected", "anthropic-ratelimit-unified-reset": fmt.Sprint(reset)}})
	r := post(t, url, "/v1/messages", key, msgBody("claude-opus-4-1", false))
	if r.status != 429 {
		t.Fatalf("429 expected: %d", r.status)
	}
	ra := r.header.Get("Retry-After")
	var secs int64
	fmt.Sscan(ra, &secs)
	if secs < 89*60 || secs > 91*60 {
		t.Fatalf("retry-after %q, want ~5400", ra)
	}
	// While limited, the key stays on a1 and is told to wait, without an upstream call.
	before := e.fake.MessageCount()
	r = post(t, url, "/v1/messages", key, msgBody("claude-opus-4-1", false))
	if r.status != 429 || e.fake.MessageCount() != before {
		t.Fatalf("limited account must answer 429 locally: %d", r.status)
	}
	if r.header.Get("X-Ratelimit-Remaining") != "10" {
		t.Fatalf("refusals for the account's limit must not use the key's quota: remaining %q", r.header.Get("X-Ratelimit-Remaining"))
	}
	acc := e.accountViews()
	for _, a := range acc {
		if a.Name == "a1" && (a.LimitedTill == nil || a.BoundKeys != 1) {
			t.Fatalf("a1 must show the limit and keep its key: %+v", a)
		}
	}
}

// TestHotPathRoundTrips counts Redis round trips for an already-bound key.
// withoutStoreWatch parks the store watchdog (app's watchStore, a GET of
// cr:sync:last every WatchInterval, 200 ms in the harness) for tests that
// count a request's round trips on the shared client: it is no request's
// work, and a tick landing inside the counted window was taken for a third
// round trip before forwarding.
func withoutStoreWatch() envOpt {
	return withApp(func(c *app.Config) { c.WatchInterval = time.Hour })
}

func TestHotPathRoundTrips(t *testing.T) {
	e := newEnv(t, withoutStoreWatch())
	e.apiAccount("high", "a1")
	url := e.start()
	key := e.issue("high")
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatal(r.status)
	}
	e.srvs[0].waitBackground() // let the first request's usage record land
	// The first request bound the key, and that binding is posted to the
	// ledger, whose writer commits it in the background under the ledger's
	// Redis lock: its lock release (an EVALSHA) could land in the counted
	// window below and be taken for a hot-path round trip. A bound key's
	// requests post nothing, so once it is written nothing else is counted.
	if err := e.apps[0].Ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	counter := &testenv.RoundTrips{SpareSHA: e.apps[0].Limiter.SpareHash()}
	e.apps[0].Store.Client.AddHook(counter)
	for _, model := range []string{"claude-sonnet-4-5", "claude-haiku-4-5"} {
		counter.Reset()
		if r := post(t, url, "/v1/messages", key, msgBody(model, false)); r.status != 200 {
			t.Fatal(r.status)
		}
		e.srvs[0].handlers.Wait() // the request has ended, its lease released
		if n := counter.BeforeUsage(); n > 2 {
			t.Fatalf("%s: %d round trips before forwarding, budget 2 (%v)", model, n, counter.Names())
		}
		released := false
		for _, trip := range counter.Names() {
			released = released || (len(trip) == 1 && trip[0] == "lease-release")
		}
		if !released {
			t.Fatalf("%s: the key's concurrency lease was not released (%v)", model, counter.Names())
		}
	}
}

func TestRevokeTakesEffectOnEveryInstanceAtOnce(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	_, u2 := e.start(), e.start()
	key := e.issue("trial")
	// The second request is authenticated from u2's cache (CACHE_TTL):
	// the revocation must reach it all the same.
	for range 2 {
		if r := post(t, u2, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	if st := e.admin(http.MethodDelete, "/admin/api/keys/"+keyIDOf(key), nil, nil); st != 200 {
		t.Fatal(st)
	}
	r := post(t, u2, "/v1/messages", key, msgBody("claude-sonnet-4-5", false))
	if r.status != 401 || !strings.Contains(r.errMessage(), "Unauthorized API key") {
		t.Fatalf("revoked key on the other instance: %d %s", r.status, r.body)
	}
}

// Findings of the review, kept as regressions.
func TestCustomerCannotBlacklistAccounts(t *testing.T) {
	e := newEnv(t)
	k1 := e.apiAccount("high", "a1")
	e.apiAccount("high", "a2")
	url := e.start()
	key := e.issue("high", "a1")
	// The API echoes unknown beta names inside its 400 message.
	e.fake.InjectFault(k1, fakeupstream.Fault{Status: 400, ErrorType: "invalid_request_error",
		Message: "Unexpected value(s) `revoked`, `organization has been disabled` for the `anthropic-beta` header"})
	r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false), "Anthropic-Beta", "revoked")
	if r.status != 400 {
		t.Fatalf("the client's own 400 passes through: %d", r.status)
	}
	acc := e.accountViews()
	for _, a := range acc {
		if a.Blacklist != nil {
			t.Fatalf("a customer's request blacklisted %s", a.Name)
		}
	}
}

func TestDeadCredentialWithNoSpareAccountIsNotAKeyError(t *testing.T) {
	e := newEnv(t)
	k1 := e.apiAccount("high", "a1")
	url := e.start()
	key := e.issue("high")
	e.fake.RevokeAccess(k1)
	e.fake.InjectFault(k1, fakeupstream.Fault{Status: 401, ErrorType: "authentication_error", Message: "invalid x-api-key"})
	r := post(t, url, "/v1/messages", key, msgBody("claude-opus-4-1", false))
	if r.status != 503 || r.errType() != "overloaded_error" || r.errMessage() != "No High accounts available in pool" {
		t.Fatalf("want the pool's 503, not the upstream's 401: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Ratelimit-Remaining") != "10" {
		t.Fatalf("no answer, so the place is refunded: remaining %q", r.header.Get("X-Ratelimit-Remaining"))
	}
}

func TestAuthenticationComesBeforeTheBody(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "a1")
	url := e.start()
	for _, c := range []struct{ key, body, msg string }{
		{"not-a-key", "", "Invalid API key format"},
		{"sk-cli-v1-" + strings.Repeat("Q", 32), `{"max_tokens":1}`, "Unauthorized API key"},
	} {
		r := post(t, url, "/v1/messages", c.key, c.body)
		if r.status != 401 || !strings.Contains(r.errMessage(), c.msg) {
			t.Fatalf("%q: %d %s", c.key, r.status, r.body)
		}
	}
}
