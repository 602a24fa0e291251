package server

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

type oaResponse struct {
	ID, Object, Status, Model string
	IncompleteDetails         *struct{ Reason string } `json:"incomplete_details"`
	Output                    []struct {
		Type, ID, Role, Name, Arguments string
		CallIDAlt                       string `json:"call_id"`
		Content                         []struct{ Type, Text string }
	}
	Usage struct {
		InputTokens        int `json:"input_tokens"`
		OutputTokens       int `json:"output_tokens"`
		TotalTokens        int `json:"total_tokens"`
		InputTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"input_tokens_details"`
	}
}

// TestResponsesAPI: POST /v1/responses runs the Messages path (same key,
// same quota window) and answers in the Responses API's shapes.
func TestResponsesAPI(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	const model = "claude-sonnet-4-5-20250929"

	r := oaPostTo(t, url, "/v1/responses", key, `{"model":"`+model+`","instructions":"Be brief.","input":"Hi there","max_output_tokens":100}`)
	var resp oaResponse
	if r.status != 200 || json.Unmarshal(r.body, &resp) != nil || resp.Object != "response" || resp.Status != "completed" ||
		len(resp.Output) != 1 || resp.Output[0].Type != "message" || len(resp.Output[0].Content) != 1 ||
		resp.Output[0].Content[0].Type != "output_text" || resp.Output[0].Content[0].Text != "Hello from the fake upstream. You said: Hi there" ||
		resp.Usage.TotalTokens != resp.Usage.InputTokens+resp.Usage.OutputTokens || resp.Usage.OutputTokens == 0 {
		t.Fatalf("plain: %d %s", r.status, r.body)
	}
	if r.header.Get("X-Ratelimit-Remaining") != "41" {
		t.Errorf("remaining %q", r.header.Get("X-Ratelimit-Remaining"))
	}
	reqs := e.fake.Requests()
	if up := reqs[len(reqs)-1]; up.Path != "/v1/messages" || !strings.Contains(string(up.Body), `"system":"Be brief."`) ||
		!strings.Contains(string(up.Body), `"max_tokens":100`) {
		t.Errorf("upstream got %s %s", up.Path, up.Body)
	}
	// Cut by max_output_tokens: incomplete, with its reason.
	r = oaPostTo(t, url, "/v1/responses", key, `{"model":"`+model+`","input":"Hi there","max_output_tokens":3}`)
	if json.Unmarshal(r.body, &resp) != nil || resp.Status != "incomplete" || resp.IncompleteDetails == nil || resp.IncompleteDetails.Reason != "max_output_tokens" {
		t.Errorf("incomplete: %d %s", r.status, r.body)
	}

	// Streamed: the events in the API's order, ending with the usage.
	r = oaPostTo(t, url, "/v1/responses", key, `{"model":"`+model+`","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"Stream it"}]}]}`)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", r.status, r.body)
	}
	var types []string
	var text string
	seq := 0
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev struct {
			Type     string
			Seq      int `json:"sequence_number"`
			Delta    string
			Response *oaResponse
		}
		if err := json.Unmarshal([]byte(d), &ev); err != nil {
			t.Fatalf("event %q: %v", d, err)
		}
		if ev.Seq != seq {
			t.Errorf("sequence_number %d, want %d", ev.Seq, seq)
		}
		seq++
		if len(types) == 0 || types[len(types)-1] != ev.Type {
			types = append(types, ev.Type)
		}
		if ev.Type == "response.output_text.delta" {
			text += ev.Delta
		}
		if ev.Type == "response.completed" && (ev.Response == nil || ev.Response.Usage.TotalTokens == 0 || len(ev.Response.Output) != 1) {
			t.Errorf("completed without usage or output: %s", d)
		}
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if strings.Join(types, " ") != strings.Join(want, " ") || text != "Hello from the fake upstream. You said: Stream it" {
		t.Errorf("events %v text %q", types, text)
	}

	// Refused in OpenAI's shape: state this proxy does not keep.
	for _, c := range []struct{ name, body, param string }{
		{"previous_response_id", `{"model":"` + model + `","input":"x","previous_response_id":"resp_1"}`, "previous_response_id"},
		{"store", `{"model":"` + model + `","input":"x","store":true}`, "store"},
	} {
		r := oaPostTo(t, url, "/v1/responses", key, c.body)
		var oe oaError
		if r.status != 400 || json.Unmarshal(r.body, &oe) != nil || oe.Error.Type != "invalid_request_error" || oe.Error.Param == nil ||
			*oe.Error.Param != c.param || !strings.Contains(oe.Error.Message, "stateless") {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	// A bad key: OpenAI's shape, the Messages path's status.
	r = oaPostTo(t, url, "/v1/responses", "sk-cli-v1-"+strings.Repeat("x", 31), `{"model":"`+model+`","input":"x"}`)
	var oe oaError
	if r.status != 401 || json.Unmarshal(r.body, &oe) != nil || oe.Error.Type != "authentication_error" {
		t.Errorf("bad key: %d %s", r.status, r.body)
	}
}

// TestResponsesToolRoundTrip: a function call out, its output back in.
func TestResponsesToolRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	tools := `"tools":[{"type":"function","name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]`
	r := oaPostTo(t, url, "/v1/responses", key, `{"model":"claude-sonnet-4-5-20250929",`+tools+`,"input":"Paris"}`)
	var resp oaResponse
	if r.status != 200 || json.Unmarshal(r.body, &resp) != nil || len(resp.Output) != 2 || resp.Output[1].Type != "function_call" ||
		resp.Output[1].Name != "weather" || resp.Output[1].Arguments != `{"city":"Paris"}` || resp.Output[1].CallIDAlt == "" {
		t.Fatalf("call: %d %s", r.status, r.body)
	}
	call := resp.Output[1]
	next, _ := json.Marshal([]any{
		map[string]any{"role": "user", "content": "Paris"},
		map[string]any{"type": "function_call", "call_id": call.CallIDAlt, "name": call.Name, "arguments": call.Arguments},
		map[string]any{"type": "function_call_output", "call_id": call.CallIDAlt, "output": "18 degrees"},
	})
	r = oaPostTo(t, url, "/v1/responses", key, `{"model":"claude-sonnet-4-5-20250929",`+tools+`,"input":`+string(next)+`}`)
	if r.status != 200 || !strings.Contains(string(r.body), "Tool said: 18 degrees") {
		t.Fatalf("output: %d %s", r.status, r.body)
	}
}
