package fakeupstream

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// TestBetaGatedFeatures: what current clients send with their beta is
// answered; without the beta the API's refusal.
func TestBetaGatedFeatures(t *testing.T) {
	s := start(t, Options{})
	const midSystem = `{"model":"claude-sonnet-5-5","max_tokens":100,"messages":[{"role":"user","content":"hello"},{"role":"system","content":[{"type":"text","text":"Environment: linux"}]}]}`
	const format = `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"Ann"}],"output_format":{"type":"json_schema","schema":{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string","enum":["a","b"]}}}}}}`
	cases := []struct {
		name, beta, body string
		status           int
		want             string
	}{
		{"mid-conversation system without the beta", "", midSystem, 400, "messages.1.role"},
		{"mid-conversation system with Claude Code's betas", "claude-code-20250219," + PerTurnControlBeta, midSystem, 200, "Hello from the fake upstream. You said: hello"},
		{"output_format without the beta", "", format, 400, "output_format"},
		{"output_format with it: JSON of the schema", StructuredOutputsBeta, format, 200, `{"age":1,"name":"Ann","tags":["a"]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := keyHeaders(testKey)
			if c.beta != "" {
				h.Set("Anthropic-Beta", c.beta)
			}
			resp, err := send(t, context.Background(), s, "POST", "/v1/messages", h, c.body)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if c.status != 200 {
				if !strings.Contains(string(b), c.want) {
					t.Fatalf("refusal %s, want %q", b, c.want)
				}
				return
			}
			var m struct{ Content []struct{ Text string } }
			if json.Unmarshal(b, &m) != nil || len(m.Content) == 0 || m.Content[0].Text != c.want {
				t.Fatalf("answer %s, want text %q", b, c.want)
			}
		})
	}
}

func TestThinking(t *testing.T) {
	for _, c := range []struct {
		name, thinking string
		want           string // error text, or the answer's first block type
	}{
		{"enabled", `{"type":"enabled","budget_tokens":1024}`, "thinking"},
		{"adaptive (Claude Code) adds no block", `{"type":"adaptive"}`, "text"},
		{"budget under 1024", `{"type":"enabled","budget_tokens":1000}`, "greater than or equal to 1024"},
		{"budget not under max_tokens", `{"type":"enabled","budget_tokens":2000}`, "must be greater than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ans, err := Reply([]byte(`{"model":"m","max_tokens":2000,"thinking":` + c.thinking + `,"messages":[{"role":"user","content":"Why?"}]}`))
			if err != nil {
				if !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want %q", err, c.want)
				}
				return
			}
			blocks := contentJSON(ans)
			first := blocks[0].(map[string]string)
			if first["type"] != c.want || (c.want == "thinking" && (first["thinking"] != "Thinking about: Why?" || first["signature"] == "")) {
				t.Fatalf("blocks %v", blocks)
			}
			// A stream carries the same blocks, the text after the thinking.
			evs := streamEvents("msg_1", ans, 2)
			var types []string
			for _, ev := range evs {
				if ev.name == "content_block_start" {
					types = append(types, ev.data.(map[string]any)["content_block"].(map[string]any)["type"].(string))
				}
			}
			if want := map[string]string{"thinking": "thinking text", "text": "text"}[c.want]; strings.Join(types, " ") != want {
				t.Fatalf("streamed blocks %v, want %s", types, want)
			}
		})
	}
}
