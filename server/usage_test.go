package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/usage"
)

// The tokens the proxy records must be exactly what the upstream reported,
// for plain and streamed answers, and the stream must reach the client
// unchanged.
func TestUsageTotalsMatchUpstream(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	var wantIn, wantOut, wantCacheW, wantCacheR int64
	bodies := []string{
		msgBody("claude-sonnet-4-5", false),
		msgBody("claude-sonnet-4-5", true),
		`{"model":"claude-opus-4-1","max_tokens":3,"stream":true,"system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"one two three four five six seven eight"}]}`,
	}
	for _, b := range bodies {
		ans, err := fakeupstream.Reply([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		wantIn += int64(ans.Usage.InputTokens)
		wantOut += int64(ans.Usage.OutputTokens)
		wantCacheW += int64(ans.Usage.CacheCreationInputTokens)
		wantCacheR += int64(ans.Usage.CacheReadInputTokens)
		r := post(t, url, "/v1/messages", key, b)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if strings.Contains(b, `"stream":true`) && !strings.HasSuffix(string(r.body), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") {
			t.Fatalf("stream altered: %q", r.body)
		}
	}
	e.srvs[0].waitBackground()
	var out struct {
		Usage usage.Summary `json:"usage"`
	}
	if st := e.admin(http.MethodGet, "/admin/api/usage?key="+keyIDOf(key), nil, &out); st != 200 {
		t.Fatalf("usage: %d", st)
	}
	got := out.Usage.Total
	if got.Requests != 3 || got.InputTokens != wantIn || got.OutputTokens != wantOut ||
		got.CacheCreationInputTokens != wantCacheW || got.CacheReadInputTokens != wantCacheR || out.Usage.Last5h.Requests != 3 {
		t.Fatalf("recorded %+v, upstream reported in=%d out=%d cw=%d cr=%d", got, wantIn, wantOut, wantCacheW, wantCacheR)
	}
	// The customer sees the same figures.
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/usage", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cu struct {
		Tokens usage.Summary `json:"tokens"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&cu)
	if cu.Tokens.Total.OutputTokens != wantOut {
		t.Fatalf("customer usage: %+v", cu)
	}
}

func TestMetricsScrape(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", true))
	post(t, url, "/v1/messages", key, msgBody("claude-opus-4-1", false)) // 403
	body := scrape(t, url)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("not Prometheus text: %v", err)
	}
	for _, name := range []string{
		"claude_route_requests_total", "claude_route_upstream_latency_seconds", "claude_route_time_to_first_byte_seconds",
		"claude_route_active_streams", "claude_route_slots_used", "claude_route_blacklisted_accounts", "claude_route_store_up",
	} {
		if fams[name] == nil {
			t.Errorf("missing %s", name)
		}
	}
	statuses := map[string]float64{}
	for _, m := range fams["claude_route_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "status" {
				statuses[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	}
	if statuses["200"] != 1 || statuses["403"] != 1 {
		t.Errorf("requests by status: %v", statuses)
	}
	for _, m := range fams["claude_route_slots_used"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "trial" && m.GetGauge().GetValue() != 1 {
			t.Errorf("trial slots used = %v", m.GetGauge().GetValue())
		}
	}
	if strings.Contains(string(body), "sk-ant-") || strings.Contains(string(body), key) {
		t.Fatal("a secret in /metrics")
	}
}

// usageOf reads a key's usage through the admin API of instance i and the
// customer's own /v1/usage.
func (e *env) usageOf(i int, key string) (admin, customer usage.Totals) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.urls[i]+"/admin/api/usage?key="+keyIDOf(key), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	var a struct {
		Usage usage.Summary `json:"usage"`
	}
	getJSON(e.t, req, &a)
	req, _ = http.NewRequest(http.MethodGet, e.urls[i]+"/v1/usage", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	var c struct {
		Tokens usage.Summary `json:"tokens"`
	}
	getJSON(e.t, req, &c)
	return a.Usage.Total, c.Tokens.Total
}

func getJSON(t testing.TB, req *http.Request, out any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d", req.URL.Path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// Usage totals live in memory until flushed; a graceful stop (SIGTERM)
// flushes them, so a new instance reads every token. The flush interval is
// an hour here: everything the new instance sees came from the shutdown
// flush, and the old instance's views show totals the store has not got.
func TestUsageSurvivesGracefulRestart(t *testing.T) {
	e := newEnv(t, withUsageFlush(time.Hour))
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	var want usage.Totals
	for i := range 12 {
		b := msgBody("claude-sonnet-4-5", i%2 == 0)
		ans, err := fakeupstream.Reply([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		want.Requests++
		want.InputTokens += int64(ans.Usage.InputTokens)
		want.OutputTokens += int64(ans.Usage.OutputTokens)
		want.CacheCreationInputTokens += int64(ans.Usage.CacheCreationInputTokens)
		want.CacheReadInputTokens += int64(ans.Usage.CacheReadInputTokens)
		if r := post(t, url, "/v1/messages", key, b); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if e.apps[0].Usage.Unflushed() == 0 {
		t.Fatal("totals already flushed: the test would prove nothing")
	}
	// The views of the replica holding them add what is not flushed yet.
	if a, c := e.usageOf(0, key); a != want || c != want {
		t.Fatalf("before restart: admin %+v, customer %+v, want %+v", a, c, want)
	}
	e.stop(0)
	e.start()
	if e.apps[1].Usage.Unflushed() != 0 {
		t.Fatal("the new instance holds totals of its own")
	}
	if a, c := e.usageOf(1, key); a != want || c != want {
		t.Fatalf("after restart: admin %+v, customer %+v, want %+v (tokens lost or doubled)", a, c, want)
	}
}
