package openai

import (
	"bytes"
	"testing"
)

// TestLenientChat: what real clients send that Messages has no field for,
// or refuses (README "Chat leniency"); each of these was a 400 before.
func TestLenientChat(t *testing.T) {
	const user = `"messages":[{"role":"user","content":"x"}]`
	schema := `{"type":"object","properties":{"name":{"type":"string"}},"required":["name"],"additionalProperties":false}`
	cases := []struct {
		name, in, want   string
		beta, answerTool string
	}{
		{"reasoning_effort without a limit adds the budget to the default",
			`{"model":"m","reasoning_effort":"medium","temperature":0.2,` + user + `}`,
			`{"model":"m","max_tokens":12288,` + user + `,"thinking":{"type":"enabled","budget_tokens":8192}}`, "", ""},
		{"reasoning_effort within the client's limit",
			`{"model":"m","reasoning_effort":"high","max_completion_tokens":5000,` + user + `}`,
			`{"model":"m","max_tokens":5000,` + user + `,"thinking":{"type":"enabled","budget_tokens":4999}}`, "", ""},
		{"a limit too small for thinking leaves it off",
			`{"model":"m","reasoning_effort":"low","max_tokens":1000,` + user + `}`,
			`{"model":"m","max_tokens":1000,` + user + `}`, "", ""},
		{"minimal is the smallest budget; none is off",
			`{"model":"m","reasoning_effort":"minimal",` + user + `}`,
			`{"model":"m","max_tokens":5120,` + user + `,"thinking":{"type":"enabled","budget_tokens":1024}}`, "", ""},
		{"none", `{"model":"m","reasoning_effort":"none",` + user + `}`, `{"model":"m","max_tokens":4096,` + user + `}`, "", ""},
		{"thinking left off after a tool call (its signed thinking block is not in the history)",
			`{"model":"m","reasoning_effort":"high","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}],"tools":[{"type":"function","function":{"name":"f"}}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"c","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":"r"}]}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}]}`, "", ""},
		{"json_schema on a model with structured outputs",
			`{"model":"claude-sonnet-4-5-20250929","response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":` + schema + `}},` + user + `}`,
			`{"model":"claude-sonnet-4-5-20250929","max_tokens":4096,` + user + `,"output_format":{"type":"json_schema","schema":` + schema + `}}`, StructuredOutputsBeta, ""},
		{"json_schema on an older model: a forced tool",
			`{"model":"claude-sonnet-4-20250514","response_format":{"type":"json_schema","json_schema":{"name":"person","schema":` + schema + `}},` + user + `}`,
			`{"model":"claude-sonnet-4-20250514","max_tokens":4096,` + user + `,"tools":[{"name":"json_answer","description":"Give the answer: its input is the whole answer.","input_schema":` + schema + `}],"tool_choice":{"type":"tool","name":"json_answer"}}`, "", AnswerTool},
		{"json_object: a forced tool, and no thinking with it",
			`{"model":"claude-sonnet-4-5","response_format":{"type":"json_object"},"reasoning_effort":"high",` + user + `}`,
			`{"model":"claude-sonnet-4-5","max_tokens":4096,` + user + `,"tools":[{"name":"json_answer","description":"Give the answer: its input is the whole answer.","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"json_answer"}}`, "", AnswerTool},
		{"an email as user is hashed",
			`{"model":"m","user":"Ann@Example.com",` + user + `}`,
			`{"model":"m","max_tokens":4096,` + user + `,"metadata":{"user_id":"user-71d4f55f72fa128dfb468a1a3901507c"}}`, "", ""},
		{"whitespace-only stop entries dropped",
			`{"model":"m","stop":["\n"," ","END",""],` + user + `}`,
			`{"model":"m","max_tokens":4096,` + user + `,"stop_sequences":["END"]}`, "", ""},
		{"a whitespace-only stop string dropped",
			`{"model":"m","stop":"\n\n",` + user + `}`,
			`{"model":"m","max_tokens":4096,` + user + `}`, "", ""},
		{"tool-call history without tools: the called tools declared, none callable",
			`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"r"}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"c","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"c","content":"r"}]}],"tools":[{"name":"f","description":"f (called earlier in this conversation; not offered now)","input_schema":{"type":"object"}}],"tool_choice":{"type":"none"}}`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ConvertRequest([]byte(c.in), RequestOptions{})
			if err != nil {
				t.Fatalf("error %d %s (param %s)", err.Status, err.Message, err.Param)
			}
			jsonEq(t, got.Body, c.want)
			if got.Beta != c.beta || got.AnswerTool != c.answerTool {
				t.Errorf("beta %q answer tool %q, want %q %q", got.Beta, got.AnswerTool, c.beta, c.answerTool)
			}
		})
	}
}

func TestAnswerToolResponse(t *testing.T) {
	r := Request{AnswerTool: AnswerTool}
	in := `{"id":"msg_5","type":"message","model":"m","content":[{"type":"text","text":"Calling json_answer."},{"type":"tool_use","id":"t","name":"json_answer","input":{"name": "Ann"}}],"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":2}}`
	got, err := r.ConvertResponse([]byte(in), created)
	if err != nil {
		t.Fatal(err)
	}
	jsonEq(t, got, `{"id":"chatcmpl-msg_5","object":"chat.completion","created":1767225600,"model":"m","system_fingerprint":null,
	  "choices":[{"index":0,"message":{"role":"assistant","content":"{\"name\":\"Ann\"}","refusal":null},"logprobs":null,"finish_reason":"stop"}],
	  "usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":{"cached_tokens":0}}}`)
}

const thinkingAndAnswerStream = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_9","model":"m","usage":{"input_tokens":1,"output_tokens":1}}}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think."}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Calling."}}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"t","name":"json_answer","input":{}}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"name\":"}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"Ann\"}"}}` + "\n\n" +
	"event: message_delta\n" +
	`data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}` + "\n\n" +
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

func TestStreamReasoningAndAnswerTool(t *testing.T) {
	const h = `"id":"chatcmpl-msg_9","object":"chat.completion.chunk","created":1767225600,"model":"m"`
	cases := []struct {
		name string
		req  Request
		want []string
	}{
		{"an answer tool streams as content", Request{AnswerTool: AnswerTool}, []string{
			`{` + h + `,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{"reasoning_content":"Let me think."},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{"content":"{\"name\":"},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{"content":"\"Ann\"}"},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}`,
		}},
		{"without one it is a tool call", Request{}, []string{
			`{` + h + `,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{"reasoning_content":"Let me think."},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{"content":"Calling."},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"json_answer","arguments":""}}]},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"name\":"}}]},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Ann\"}"}}]},"logprobs":null,"finish_reason":null}]}`,
			`{` + h + `,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			s := c.req.NewStream(&out, created)
			_, _ = s.Write([]byte(thinkingAndAnswerStream))
			got := events(t, out.String())
			want := append(c.want, "[DONE]")
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d:\n%s", len(got), len(want), out.String())
			}
			for i := range want[:len(want)-1] {
				jsonEq(t, []byte(got[i]), want[i])
			}
		})
	}
}
