package server

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// oaPost sends an OpenAI-style request: Authorization: Bearer, no
// anthropic-version.
func oaPost(t *testing.T, url, key, body string) reply {
	t.Helper()
	return oaPostTo(t, url, "/v1/chat/completions", key, body)
}

// oaPostTo sends an OpenAI-style request to path.
func oaPostTo(t *testing.T, url, path, key, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

type oaError struct {
	Error struct {
		Message, Type string
		Code, Param   *string
	}
}

func TestChatCompletions(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")

	// Plain: the answer converted, the quota headers of the Messages path.
	r := oaPost(t, url, key, `{"model":"claude-sonnet-4-5-20250929","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi there"}]}`)
	var comp struct {
		ID, Object, Model string
		Choices           []struct {
			Message struct {
				Role    string
				Content *string
			}
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		}
	}
	if r.status != 200 || json.Unmarshal(r.body, &comp) != nil || comp.Object != "chat.completion" || len(comp.Choices) != 1 ||
		comp.Choices[0].Message.Content == nil || *comp.Choices[0].Message.Content != "Hello from the fake upstream. You said: Hi there" ||
		comp.Choices[0].FinishReason != "stop" || comp.Usage.TotalTokens != comp.Usage.PromptTokens+comp.Usage.CompletionTokens || comp.Usage.CompletionTokens == 0 {
		t.Fatalf("plain: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Ratelimit-Remaining") != "41" {
		t.Errorf("remaining %q", r.header.Get("X-Ratelimit-Remaining"))
	}
	// Upstream saw a Messages request with the system field and a version.
	reqs := e.fake.Requests()
	up := reqs[len(reqs)-1]
	if up.Path != "/v1/messages" || up.Header.Get("Anthropic-Version") == "" || !strings.Contains(string(up.Body), `"system":"Be brief."`) {
		t.Errorf("upstream got %s %v %s", up.Path, up.Header, up.Body)
	}

	// Both paths count in one window.
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5-20250929", false)); r.status != 200 || r.header.Get("X-Ratelimit-Remaining") != "40" {
		t.Errorf("messages after a completion: %d remaining %q", r.status, r.header.Get("X-Ratelimit-Remaining"))
	}

	// Streamed, with usage.
	r = oaPost(t, url, key, `{"model":"claude-sonnet-4-5-20250929","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Stream it"}]}`)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", r.status, r.body)
	}
	var text string
	var sawUsage, sawDone bool
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if d == "[DONE]" {
			sawDone = true
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct{ Content string }
			}
			Usage *struct {
				TotalTokens int `json:"total_tokens"`
			}
		}
		if err := json.Unmarshal([]byte(d), &ch); err != nil {
			t.Fatalf("chunk %q: %v", d, err)
		}
		for _, c := range ch.Choices {
			text += c.Delta.Content
		}
		if ch.Usage != nil && ch.Usage.TotalTokens > 0 {
			sawUsage = true
		}
	}
	if text != "Hello from the fake upstream. You said: Stream it" || !sawUsage || !sawDone {
		t.Errorf("stream text %q usage %v done %v:\n%s", text, sawUsage, sawDone, r.body)
	}

	// Errors in OpenAI's shape with the Messages path's statuses.
	for _, c := range []struct {
		name, key, body string
		status          int
		typ, code, msg  string
	}{
		{"bad key", "sk-cli-v1-" + strings.Repeat("x", 31), `{"model":"claude-sonnet-4-5-20250929","messages":[{"role":"user","content":"x"}]}`, 401, "authentication_error", "invalid_api_key", "Invalid API key format"},
		{"no key", "", `{}`, 401, "authentication_error", "invalid_api_key", "Unauthorized API key"},
		{"tier rule", key, `{"model":"claude-opus-4-1-20250805","messages":[{"role":"user","content":"x"}]}`, 403, "permission_error", "permission_denied", "can only use Sonnet models"},
		{"unmappable", key, `{"model":"claude-sonnet-4-5-20250929","n":2,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request_error", "", "Unsupported parameter for Claude models: n"},
		{"not JSON", key, `{`, 400, "invalid_request_error", "", "JSON object"},
	} {
		r := oaPost(t, url, c.key, c.body)
		var oe oaError
		if r.status != c.status || json.Unmarshal(r.body, &oe) != nil || oe.Error.Type != c.typ || !strings.Contains(oe.Error.Message, c.msg) ||
			(c.code == "") != (oe.Error.Code == nil) || oe.Error.Code != nil && *oe.Error.Code != c.code {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
}

func TestChatCompletionsToolRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	tools := `"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`
	r := oaPost(t, url, key, `{"model":"claude-opus-4-1-20250805",`+tools+`,"messages":[{"role":"user","content":"Paris"}]}`)
	var comp struct {
		Choices []struct {
			Message struct {
				ToolCalls []struct {
					ID       string
					Function struct{ Name, Arguments string }
				} `json:"tool_calls"`
			}
			FinishReason string `json:"finish_reason"`
		}
	}
	if r.status != 200 || json.Unmarshal(r.body, &comp) != nil || len(comp.Choices) != 1 || comp.Choices[0].FinishReason != "tool_calls" ||
		len(comp.Choices[0].Message.ToolCalls) != 1 || comp.Choices[0].Message.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("tool call: %d %s", r.status, r.body)
	}
	tc := comp.Choices[0].Message.ToolCalls[0]
	next, _ := json.Marshal(map[string]any{"model": "claude-opus-4-1-20250805", "messages": []any{
		map[string]any{"role": "user", "content": "Paris"},
		map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": tc.ID, "type": "function",
			"function": map[string]any{"name": tc.Function.Name, "arguments": tc.Function.Arguments}}}},
		map[string]any{"role": "tool", "tool_call_id": tc.ID, "content": "18 degrees"},
	}})
	r = oaPost(t, url, key, strings.Replace(string(next), "{", "{"+tools+",", 1))
	if r.status != 200 || !strings.Contains(string(r.body), "Tool said: 18 degrees") {
		t.Fatalf("tool result: %d %s", r.status, r.body)
	}
}

func TestModelsOpenAIShape(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	get := func(hdr ...string) reply {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/models", nil)
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
	var list struct {
		Object string
		Data   []struct {
			ID, Object string
			OwnedBy    string `json:"owned_by"`
			Created    int64
		}
	}
	r := get("Authorization", "Bearer "+key)
	if r.status != 200 || json.Unmarshal(r.body, &list) != nil || list.Object != "list" || len(list.Data) == 0 ||
		list.Data[0].Object != "model" || list.Data[0].Created == 0 || list.Data[0].ID == "" {
		t.Fatalf("openai list: %d %s", r.status, r.body)
	}
	r = get("Authorization", "Bearer "+key, "Anthropic-Version", "2023-06-01")
	if r.status != 200 || !strings.Contains(string(r.body), `"has_more"`) || strings.Contains(string(r.body), `"object"`) {
		t.Fatalf("anthropic list: %d %s", r.status, r.body)
	}
	r = get("Authorization", "Bearer sk-cli-v1-bad")
	var oe oaError
	if r.status != 401 || json.Unmarshal(r.body, &oe) != nil || oe.Error.Type != "authentication_error" {
		t.Fatalf("openai 401: %d %s", r.status, r.body)
	}
}
