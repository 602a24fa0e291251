package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Every JSON body the service emits uses snake_case field names and gives
// durations in seconds. Rather than listing endpoints (and forgetting the
// next one), the whole test suite is the check: TestMain puts a recording
// transport under http.DefaultClient, which every test in this package uses
// to reach the server, and fails the run when any JSON body it saw breaks the
// rule. TestJSONNamingStyle also calls the JSON endpoints directly, so the
// rule holds when it runs alone.

func TestMain(m *testing.M) {
	rec := &jsonStyleRecorder{next: http.DefaultTransport}
	http.DefaultClient.Transport = rec
	code := m.Run()
	if v := rec.violations(); len(v) > 0 {
		fmt.Fprintf(os.Stderr, "JSON naming style: %d response(s) break the rule (snake_case fields, durations in seconds):\n  %s\n",
			len(v), strings.Join(v, "\n  "))
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// jsonStyleRecorder checks each JSON response that passes through it.
type jsonStyleRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	bad  map[string]bool
	seen int
}

func (r *jsonStyleRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil || !isJSON(resp.Header.Get("Content-Type")) {
		return resp, err
	}
	// Buffer the body (JSON answers are small and complete), check it, and
	// hand the test an identical body.
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil
	}
	problems := jsonStyleProblems(body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen++
	for _, p := range problems {
		if r.bad == nil {
			r.bad = map[string]bool{}
		}
		r.bad[req.Method+" "+req.URL.Path+": "+p] = true
	}
	return resp, nil
}

func (r *jsonStyleRecorder) violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.bad))
	for k := range r.bad {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

var (
	snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// A Go duration as time.Duration.String writes it ("5h0m0s", "1m30s",
	// "250ms"): the service gives durations as numbers of seconds instead.
	goDuration = regexp.MustCompile(`^-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`)
)

// jsonStyleProblems lists each object key that is not snake_case and each
// string that is a Go duration, by its path in the document.
func jsonStyleProblems(body []byte) []string {
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil // not JSON after all: other tests judge the body
	}
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if !snakeCase.MatchString(k) {
					out = append(out, fmt.Sprintf("field %s.%s is not snake_case", path, k))
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		case string:
			if goDuration.MatchString(v) {
				out = append(out, fmt.Sprintf("%s = %q is a Go duration, not seconds", path, v))
			}
		}
	}
	walk("$", doc)
	sort.Strings(out)
	return out
}

// The checker itself must be able to fail.
func TestJSONStyleChecker(t *testing.T) {
	for _, tc := range []struct {
		body string
		bad  int
	}{
		{`{"total":{"requests":1,"input_tokens":2},"by_family":{"opus":{"requests":1}},"last_5h":{}}`, 0},
		{`{"window_seconds":18000,"reset":"2026-01-01T00:00:00Z","text":"5 hours"}`, 0},
		{`[{"name":"acct-1","tier":"high"}]`, 0},
		{`{"Total":{"InputTokens":1}}`, 2},
		{`{"usage":{"ByFamily":{}}}`, 1},
		{`{"window":"5h0m0s"}`, 1},
		{`{"list":[{"durationMs":"250ms"}]}`, 2},
		{`{"acct-1":{}}`, 1},
		{`not json`, 0},
	} {
		if got := jsonStyleProblems([]byte(tc.body)); len(got) != tc.bad {
			t.Errorf("%s: %d problems %v, want %d", tc.body, len(got), got, tc.bad)
		}
	}
}

// TestJSONNamingStyle calls every JSON endpoint with data in it, so the
// rule is checked even when this test runs alone.
func TestJSONNamingStyle(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "acct-1")
	url := e.start()
	key := e.issue("high")
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e.srvs[0].waitBackground()
	id := keyIDOf(key)
	check := func(method, path string, auth string) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if p := jsonStyleProblems(b); len(p) > 0 {
			t.Errorf("%s %s: %v", method, path, p)
		}
	}
	for _, p := range []string{"/admin/api/keys", "/admin/api/keys/" + id, "/admin/api/pool", "/admin/api/accounts",
		"/admin/api/status", "/admin/api/usage", "/admin/api/usage?key=" + id} {
		check(http.MethodGet, p, adminToken)
	}
	check(http.MethodPost, "/admin/api/sync", adminToken)
	check(http.MethodGet, "/v1/usage", key)
	check(http.MethodGet, "/v1/models", key)
	check(http.MethodGet, "/health", "")
}
