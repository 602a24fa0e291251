package openai

import (
	"net/http"
	"testing"
	"time"
)

var created = time.Unix(1767225600, 0)

func TestConvertResponse(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"text, end_turn, usage with cache",
			`{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello"},{"type":"text","text":" there"}],"stop_reason":"end_turn","stop_sequence":null,
			  "usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":100,"cache_read_input_tokens":50}}`,
			`{"id":"chatcmpl-msg_1","object":"chat.completion","created":1767225600,"model":"claude-sonnet-4-5-20250929","system_fingerprint":null,
			  "choices":[{"index":0,"message":{"role":"assistant","content":"Hello there","refusal":null},"logprobs":null,"finish_reason":"stop"}],
			  "usage":{"prompt_tokens":160,"completion_tokens":5,"total_tokens":165,"prompt_tokens_details":{"cached_tokens":50}}}`},
		{"tool_use with text, thinking as reasoning_content",
			`{"id":"msg_2","type":"message","role":"assistant","model":"m","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city": "Paris"}},{"type":"tool_use","id":"toolu_2","name":"time","input":{}}],"stop_reason":"tool_use",
			  "usage":{"input_tokens":3,"output_tokens":7}}`,
			`{"id":"chatcmpl-msg_2","object":"chat.completion","created":1767225600,"model":"m","system_fingerprint":null,
			  "choices":[{"index":0,"message":{"role":"assistant","content":"Checking.","reasoning_content":"hmm","refusal":null,"tool_calls":[
			    {"id":"toolu_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
			    {"id":"toolu_2","type":"function","function":{"name":"time","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],
			  "usage":{"prompt_tokens":3,"completion_tokens":7,"total_tokens":10,"prompt_tokens_details":{"cached_tokens":0}}}`},
		{"only tool_use: content null",
			`{"id":"msg_3","type":"message","model":"m","content":[{"type":"tool_use","id":"t","name":"f","input":{}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}`,
			`{"id":"chatcmpl-msg_3","object":"chat.completion","created":1767225600,"model":"m","system_fingerprint":null,
			  "choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],
			  "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2,"prompt_tokens_details":{"cached_tokens":0}}}`},
		{"max_tokens is length; empty content",
			`{"id":"msg_4","type":"message","model":"m","content":[],"stop_reason":"max_tokens","usage":{"input_tokens":1,"output_tokens":0}}`,
			`{"id":"chatcmpl-msg_4","object":"chat.completion","created":1767225600,"model":"m","system_fingerprint":null,
			  "choices":[{"index":0,"message":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":"length"}],
			  "usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1,"prompt_tokens_details":{"cached_tokens":0}}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ConvertResponse([]byte(c.in), created)
			if err != nil {
				t.Fatal(err)
			}
			jsonEq(t, got, c.want)
		})
	}
	if _, err := ConvertResponse([]byte(`{"type":"error"}`), created); err == nil {
		t.Error("an error body converted as an answer")
	}
}

func TestFinishReason(t *testing.T) {
	for in, want := range map[string]string{
		"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
		"tool_use": "tool_calls", "refusal": "content_filter", "model_context_window_exceeded": "length",
	} {
		if got := FinishReason(in); got != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

func TestFromAnthropic(t *testing.T) {
	cases := []struct {
		status int
		in     string
		want   string
	}{
		{401, `{"type":"error","error":{"type":"authentication_error","message":"Invalid API key format: expected sk-cli-v1-…"}}`,
			`{"error":{"message":"Invalid API key format: expected sk-cli-v1-…","type":"authentication_error","param":null,"code":"invalid_api_key"}}`},
		{403, `{"type":"error","error":{"type":"permission_error","message":"Trial tier can only use Sonnet models"}}`,
			`{"error":{"message":"Trial tier can only use Sonnet models","type":"permission_error","param":null,"code":"permission_denied"}}`},
		{429, `{"type":"error","error":{"type":"rate_limit_error","message":"Rate limit exceeded for sonnet (42/42 in 5 hours)"}}`,
			`{"error":{"message":"Rate limit exceeded for sonnet (42/42 in 5 hours)","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}`},
		{529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			`{"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":"overloaded"}}`},
		{400, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: bad"}}`,
			`{"error":{"message":"messages: bad","type":"invalid_request_error","param":null,"code":null}}`},
		{http.StatusBadGateway, `<html>bad gateway</html>`,
			`{"error":{"message":"<html>bad gateway</html>","type":"api_error","param":null,"code":"server_error"}}`},
		{http.StatusServiceUnavailable, ``,
			`{"error":{"message":"Service Unavailable","type":"overloaded_error","param":null,"code":"overloaded"}}`},
	}
	for _, c := range cases {
		e := FromAnthropic(c.status, []byte(c.in))
		if e.Status != c.status {
			t.Errorf("status %d, want %d", e.Status, c.status)
		}
		jsonEq(t, e.JSON(), c.want)
	}
}
