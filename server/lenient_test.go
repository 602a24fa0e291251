package server

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// TestChatLeniency: what real OpenAI clients send, end to end through the
// proxy to the (faithful) fake; each of these was a 400 before.
func TestChatLeniency(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	const s45, s4 = "claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514"
	schema := `{"name":"person","schema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}}`
	type comp struct {
		Choices []struct {
			Message struct {
				Content          *string
				ReasoningContent string `json:"reasoning_content"`
			}
			FinishReason string `json:"finish_reason"`
		}
	}
	cases := []struct {
		name, body   string
		content      string // the answer's content; "" to skip
		reasoning    string
		upstream     []string
		upstreamNot  []string
		upstreamBeta string
	}{
		{name: "reasoning_effort",
			body:      `{"model":"` + s45 + `","reasoning_effort":"high","messages":[{"role":"user","content":"Think"}]}`,
			content:   "Hello from the fake upstream. You said: Think",
			reasoning: "Thinking about: Think",
			upstream:  []string{`"max_tokens":28672`, `"thinking":{"type":"enabled","budget_tokens":24576}`}},
		{name: "json_schema with structured outputs",
			body:         `{"model":"` + s45 + `","response_format":{"type":"json_schema","json_schema":` + schema + `},"messages":[{"role":"user","content":"Ann"}]}`,
			content:      `{"name":"Ann"}`,
			upstream:     []string{`"output_format":{"type":"json_schema"`},
			upstreamBeta: "structured-outputs-2025-11-13"},
		{name: "json_schema through the answer tool",
			body:     `{"model":"` + s4 + `","response_format":{"type":"json_schema","json_schema":` + schema + `},"messages":[{"role":"user","content":"Ann"}]}`,
			content:  `{"name":"Ann"}`,
			upstream: []string{`"tool_choice":{"type":"tool","name":"json_answer"}`}},
		{name: "email user hashed",
			body:        `{"model":"` + s45 + `","user":"ann@example.com","messages":[{"role":"user","content":"x"}]}`,
			upstream:    []string{`"metadata":{"user_id":"user-71d4f55f72fa128dfb468a1a3901507c"}`},
			upstreamNot: []string{"ann@example.com"}},
		{name: "whitespace stops dropped",
			body:     `{"model":"` + s45 + `","stop":["\n"," ","END"],"messages":[{"role":"user","content":"x"}]}`,
			upstream: []string{`"stop_sequences":["END"]`}},
		{name: "tool history without tools",
			body:     `{"model":"` + s45 + `","messages":[{"role":"user","content":"Paris"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"18 degrees"}]}`,
			content:  "Hello from the fake upstream. Tool said: 18 degrees",
			upstream: []string{`"tool_choice":{"type":"none"}`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := oaPost(t, url, key, c.body)
			var got comp
			if r.status != 200 || json.Unmarshal(r.body, &got) != nil || len(got.Choices) != 1 || got.Choices[0].Message.Content == nil {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if c.content != "" && (*got.Choices[0].Message.Content != c.content || got.Choices[0].FinishReason != "stop") ||
				got.Choices[0].Message.ReasoningContent != c.reasoning {
				t.Errorf("answer %s", r.body)
			}
			reqs := e.fake.Requests()
			up := reqs[len(reqs)-1]
			for _, s := range c.upstream {
				if !strings.Contains(string(up.Body), s) {
					t.Errorf("upstream body lacks %s: %s", s, up.Body)
				}
			}
			for _, s := range c.upstreamNot {
				if strings.Contains(string(up.Body), s) {
					t.Errorf("upstream body has %s: %s", s, up.Body)
				}
			}
			if c.upstreamBeta != "" && !strings.Contains(up.Header.Get("Anthropic-Beta"), c.upstreamBeta) {
				t.Errorf("upstream beta %q", up.Header.Get("Anthropic-Beta"))
			}
		})
	}

	// Streamed with thinking: reasoning_content deltas before the content.
	r := oaPost(t, url, key, `{"model":"`+s45+`","stream":true,"reasoning_effort":"low","messages":[{"role":"user","content":"Think"}]}`)
	if !strings.Contains(string(r.body), `"delta":{"reasoning_content":"Thinking about: Think"}`) ||
		strings.Index(string(r.body), "reasoning_content") > strings.Index(string(r.body), `"content":"Hello`) {
		t.Errorf("streamed thinking:\n%s", r.body)
	}

	// Streamed through the answer tool: the content deltas are the JSON.
	r = oaPost(t, url, key, `{"model":"`+s4+`","stream":true,"response_format":{"type":"json_schema","json_schema":`+schema+`},"messages":[{"role":"user","content":"Ann"}]}`)
	var text, finish string
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || d == "[DONE]" {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content   string
					ToolCalls []any `json:"tool_calls"`
				}
				FinishReason *string `json:"finish_reason"`
			}
		}
		if json.Unmarshal([]byte(d), &ch) != nil || len(ch.Choices) != 1 || len(ch.Choices[0].Delta.ToolCalls) > 0 {
			t.Fatalf("chunk %s", d)
		}
		text += ch.Choices[0].Delta.Content
		if f := ch.Choices[0].FinishReason; f != nil {
			finish = *f
		}
	}
	if text != `{"name":"Ann"}` || finish != "stop" {
		t.Errorf("streamed JSON %q finish %q:\n%s", text, finish, r.body)
	}
}
