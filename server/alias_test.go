package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/admission"
)

// aliasSplice is what the proxy does with a body: scan it, then replace
// the model where the scan found it.
func aliasSplice(body []byte, model string) ([]byte, error) {
	f, err := admission.ScanBody(body)
	if err != nil {
		return nil, err
	}
	return withModel(body, f.ModelAt, model), nil
}

func TestWithModel(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"compact", `{"model":"sonnet","max_tokens":5}`, `{"model":"claude-x","max_tokens":5}`},
		{"spaced", "{ \"stream\" : true ,\n \"model\" :\t \"sonnet\" }", "{ \"stream\" : true ,\n \"model\" :\t \"claude-x\" }"},
		{"nested model untouched", `{"metadata":{"model":"sonnet"},"model":"sonnet"}`, `{"metadata":{"model":"sonnet"},"model":"claude-x"}`},
		{"escaped", `{"model":"son\u006eet","messages":[]}`, `{"model":"claude-x","messages":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := aliasSplice([]byte(tc.in), "claude-x")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("not JSON: %s", got)
			}
		})
	}
	for _, bad := range []string{`[]`, `{"x":1}`, `{"model":5}`} {
		if _, err := aliasSplice([]byte(bad), "claude-x"); err == nil {
			t.Errorf("withModel(%s) succeeded", bad)
		}
	}
}

// An alias is sent upstream as its real model, on both paths; the tier's
// rules and quotas apply to the real model and the answer names it.
func TestModelAliases(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	const real = "claude-sonnet-4-5-20250929"

	r := post(t, url, "/v1/messages", key, `{"model":"sonnet","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`)
	var ans struct{ Model string }
	if r.status != http.StatusOK || json.Unmarshal(r.body, &ans) != nil || ans.Model != real {
		t.Fatalf("messages with alias: %d %s", r.status, r.body)
	}
	if got := r.header.Get("X-Ratelimit-Remaining"); got != "41" {
		t.Errorf("the alias counts in the sonnet window: remaining %q", got)
	}
	reqs := e.fake.Requests()
	if up := string(reqs[len(reqs)-1].Body); up != `{"model":"`+real+`","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}` {
		t.Errorf("upstream body %s", up)
	}

	// The tier rule applies to the real model: trial cannot reach opus by alias.
	if r := post(t, url, "/v1/messages", key, `{"model":"opus","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`); r.status != http.StatusForbidden {
		t.Errorf("opus alias on a trial key: %d %s", r.status, r.body)
	}

	// The OpenAI path: same alias, same window, the real model in the answer.
	r = oaPost(t, url, key, `{"model":"sonnet","messages":[{"role":"user","content":"hi"}]}`)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &ans) != nil || ans.Model != real {
		t.Fatalf("chat completion with alias: %d %s", r.status, r.body)
	}
	if got := r.header.Get("X-Ratelimit-Remaining"); got != "40" {
		t.Errorf("both paths count in one window: remaining %q", got)
	}
	reqs = e.fake.Requests()
	if up := string(reqs[len(reqs)-1].Body); !strings.Contains(up, `"model":"`+real+`"`) {
		t.Errorf("upstream body %s", up)
	}
}
