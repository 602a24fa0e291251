package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func getPath(t *testing.T, url string, hdr ...string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

// TestModelsAliasesAndOne: the list names the aliases the tier may use next
// to the real models; one model answers by id in the caller's shape.
func TestModelsAliasesAndOne(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	oa := []string{"Authorization", "Bearer " + key}
	an := []string{"X-Api-Key", key, "Anthropic-Version", "2023-06-01"}

	var list struct{ Data []struct{ ID string } }
	r := getPath(t, url+"/v1/models", oa...)
	if r.status != 200 || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	// trial allows Sonnet: its models, then the sonnet alias (not opus).
	if got := strings.Join(ids, " "); got != "claude-sonnet-4-5-20250929 claude-sonnet-4-20250514 claude-3-7-sonnet-20250219 sonnet" {
		t.Errorf("openai list %s", got)
	}
	r = getPath(t, url+"/v1/models", an...)
	if r.status != 200 || !strings.Contains(string(r.body), `"id":"sonnet","display_name":"sonnet → Claude Sonnet 4.5"`) {
		t.Errorf("anthropic list: %d %s", r.status, r.body)
	}

	for _, c := range []struct {
		name, id string
		hdr      []string
		status   int
		want     string
	}{
		{"openai, a model", "claude-sonnet-4-5-20250929", oa, 200, `{"id":"claude-sonnet-4-5-20250929","object":"model","created":1759104000,"owned_by":"anthropic"}`},
		{"openai, an alias", "sonnet", oa, 200, `"id":"sonnet","object":"model"`},
		{"anthropic, a model", "claude-sonnet-4-5-20250929", an, 200, `{"type":"model","id":"claude-sonnet-4-5-20250929","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"}`},
		{"openai, another tier's model", "claude-opus-4-1-20250805", oa, 404, `{"error":{"message":"model: claude-opus-4-1-20250805 is not a model your key may use`},
		{"anthropic, unknown", "gpt-4o", an, 404, `{"type":"error","error":{"type":"not_found_error","message":"model: gpt-4o is not`},
		{"openai, no key", "sonnet", []string{"Authorization", "Bearer "}, 401, `"type":"authentication_error"`},
	} {
		r := getPath(t, url+"/v1/models/"+c.id, c.hdr...)
		if r.status != c.status || !strings.Contains(string(r.body), c.want) {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
}

// TestUnknownRouteShape: an unknown route under /v1 answers in the
// caller's error shape.
func TestUnknownRouteShape(t *testing.T) {
	e := newEnv(t)
	url := e.start()
	for _, c := range []struct {
		name, path string
		hdr        []string
		openai     bool
	}{
		{"an OpenAI-only path", "/v1/embeddings", nil, true},
		{"a stored response", "/v1/responses/resp_1", nil, true},
		{"an OpenAI client", "/v1/nothing", []string{"Authorization", "Bearer sk-cli-v1-x"}, true},
		{"an Anthropic client", "/v1/nothing", []string{"X-Api-Key", "k", "Anthropic-Version", "2023-06-01"}, false},
		{"no client at all", "/v1/nothing", nil, false},
	} {
		r := getPath(t, url+c.path, c.hdr...)
		var oe oaError
		isOA := json.Unmarshal(r.body, &oe) == nil && oe.Error.Message != "" && !strings.Contains(string(r.body), `"type":"error"`)
		if r.status != 404 || isOA != c.openai || (!c.openai && r.errType() != "not_found_error") {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
}
