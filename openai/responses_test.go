package openai

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestConvertResponsesRequest(t *testing.T) {
	const png = "iVBORw0KGgo="
	cases := []struct {
		name, in, want string
	}{
		{"a string input, instructions as system, default max_tokens",
			`{"model":"m","instructions":"Be brief.","input":"Hi"}`,
			`{"model":"m","max_tokens":4096,"system":"Be brief.","messages":[{"role":"user","content":"Hi"}]}`},
		{"message items with text and image parts; developer into system; hints dropped",
			`{"model":"m","store":false,"metadata":{"a":"b"},"include":["reasoning.encrypted_content"],"prompt_cache_key":"k","truncation":"disabled","input":[
				{"role":"developer","content":"Use French."},
				{"type":"message","role":"user","content":[{"type":"input_text","text":"What is it?"},{"type":"input_image","image_url":"data:image/png;base64,` + png + `","detail":"auto"}]},
				{"type":"message","role":"assistant","content":[{"type":"output_text","text":"A cat."}]},
				{"role":"user","content":"Sure?"}]}`,
			`{"model":"m","max_tokens":4096,"system":"Use French.","messages":[
				{"role":"user","content":[{"type":"text","text":"What is it?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + png + `"}}]},
				{"role":"assistant","content":"A cat."},{"role":"user","content":"Sure?"}]}`},
		{"function calls and outputs, reasoning items dropped, tools, named choice, parallel off, limits",
			`{"model":"m","max_output_tokens":50,"temperature":0.3,"top_p":0.9,"user":"u1","input":[
				{"role":"user","content":"Weather?"},
				{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"xyz"},
				{"type":"function_call","id":"fc_1","call_id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\"}"},
				{"type":"function_call","call_id":"call_2","name":"weather","arguments":""},
				{"type":"function_call_output","call_id":"call_1","output":"18C"},
				{"type":"function_call_output","call_id":"call_2","output":[{"type":"input_text","text":"21C"}]}],
			 "tools":[{"type":"function","name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}],
			 "tool_choice":{"type":"function","name":"weather"},"parallel_tool_calls":false}`,
			`{"model":"m","max_tokens":50,"messages":[
				{"role":"user","content":"Weather?"},
				{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris"}},{"type":"tool_use","id":"call_2","name":"weather","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"18C"},{"type":"tool_result","tool_use_id":"call_2","content":"21C"}]}],
			 "metadata":{"user_id":"u1"},"temperature":0.3,"top_p":0.9,
			 "tools":[{"name":"weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
			 "tool_choice":{"type":"tool","name":"weather","disable_parallel_tool_use":true}}`},
		{"reasoning.effort is thinking; required is any",
			`{"model":"m","input":"x","reasoning":{"effort":"low","summary":"auto"},"tools":[{"type":"function","name":"f"}],"tool_choice":"required"}`,
			`{"model":"m","max_tokens":6144,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any"},"thinking":{"type":"enabled","budget_tokens":2048}}`},
		{"text.format json_schema on a model with structured outputs",
			`{"model":"claude-haiku-4-5","input":"x","text":{"format":{"type":"json_schema","name":"p","schema":{"type":"object","properties":{"a":{"type":"string"}}},"strict":true}}}`,
			`{"model":"claude-haiku-4-5","max_tokens":4096,"messages":[{"role":"user","content":"x"}],"output_format":{"type":"json_schema","schema":{"type":"object","properties":{"a":{"type":"string"}}}}}`},
		{"hosted tools, namespaces and client_metadata (as Codex sends them) left out",
			`{"model":"m","input":"x","client_metadata":{"a":"b"},"tools":[{"type":"web_search"},{"type":"namespace","name":"multi_agent_v1","tools":[]},{"type":"function","name":"f"}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}]}`},
		{"stream", `{"model":"m","input":"x","stream":true}`, `{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"}],"stream":true}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ConvertResponsesRequest([]byte(c.in), RequestOptions{})
			if err != nil {
				t.Fatalf("error %d %s (param %s)", err.Status, err.Message, err.Param)
			}
			jsonEq(t, got.Body, c.want)
		})
	}
}

func TestConvertResponsesRequestRefuses(t *testing.T) {
	cases := []struct{ name, in, param, msg string }{
		{"previous_response_id", `{"model":"m","input":"x","previous_response_id":"resp_1"}`, "previous_response_id", "stateless"},
		{"store true", `{"model":"m","input":"x","store":true}`, "store", "stateless"},
		{"background", `{"model":"m","input":"x","background":true}`, "background", "stateless"},
		{"conversation", `{"model":"m","input":"x","conversation":"conv_1"}`, "conversation", "stateless"},
		{"item_reference", `{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0].type", "stateless"},
		{"no input", `{"model":"m"}`, "input", "required"},
		{"empty input", `{"model":"m","input":""}`, "input", "empty"},
		{"unknown item", `{"model":"m","input":[{"type":"web_search_call","id":"w"}]}`, "input[0].type", "web_search_call"},
		{"file input", `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, "input[0].content[0].type", "input_file"},
		{"image by file id", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}`, "input[0].content[0].image_url", "file_id"},
		{"output for no call", `{"model":"m","input":[{"role":"user","content":"x"},{"type":"function_call_output","call_id":"c","output":"y"}]}`, "input[1].call_id", "no call"},
		{"a choice of a dropped hosted tool", `{"model":"m","input":"x","tools":[{"type":"web_search"}],"tool_choice":{"type":"function","name":"web_search"}}`, "tool_choice", "not in tools"},
		{"unknown effort", `{"model":"m","input":"x","reasoning":{"effort":"max"}}`, "reasoning.effort", "max"},
		{"unknown parameter", `{"model":"m","input":"x","frobnicate":1}`, "frobnicate", "Unrecognized"},
		{"temperature above 1", `{"model":"m","input":"x","temperature":2}`, "temperature", "0 to 1"},
		{"bad limit", `{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens", "at least 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ConvertResponsesRequest([]byte(c.in), RequestOptions{})
			if err == nil {
				t.Fatal("converted, want a 400")
			}
			if err.Status != 400 || err.Type != "invalid_request_error" || err.Param != c.param || !strings.Contains(err.Message, c.msg) {
				t.Errorf("got %d %s param=%q %q; want param %q, message containing %q", err.Status, err.Type, err.Param, err.Message, c.param, c.msg)
			}
		})
	}
}

func TestResponsesAnswer(t *testing.T) {
	req := Request{responses: true}
	in := `{"id":"msg_2","type":"message","model":"m","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city": "Paris"}}],"stop_reason":"tool_use",
	  "usage":{"input_tokens":3,"output_tokens":7,"cache_read_input_tokens":4}}`
	got, err := req.Answer([]byte(in), created)
	if err != nil {
		t.Fatal(err)
	}
	jsonEq(t, got, `{"id":"resp_2","object":"response","created_at":1767225600,"status":"completed","background":false,"error":null,"incomplete_details":null,
	  "instructions":null,"max_output_tokens":null,"model":"m","output":[
	    {"type":"reasoning","id":"rs_2_0","summary":[{"type":"summary_text","text":"hmm"}]},
	    {"type":"message","id":"msg_2_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Checking.","annotations":[],"logprobs":[]}]},
	    {"type":"function_call","id":"fc_toolu_1","status":"completed","call_id":"toolu_1","name":"weather","arguments":"{\"city\":\"Paris\"}"}],
	  "parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"store":false,"temperature":null,
	  "text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":null,"truncation":"disabled",
	  "usage":{"input_tokens":7,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":14},
	  "user":null,"metadata":{}}`)
	cut := `{"id":"msg_3","type":"message","model":"m","content":[{"type":"text","text":"Hel"}],"stop_reason":"max_tokens","usage":{"input_tokens":1,"output_tokens":1}}`
	got, _ = req.Answer([]byte(cut), created)
	if !bytes.Contains(got, []byte(`"status":"incomplete"`)) || !bytes.Contains(got, []byte(`"incomplete_details":{"reason":"max_output_tokens"}`)) {
		t.Errorf("cut answer: %s", got)
	}
}

// TestResponsesStream: the upstream stream (text, two tool calls) in the
// Responses API's event order, in any chunking, each event written by the
// Write that completes its upstream event.
func TestResponsesStream(t *testing.T) {
	want := []string{
		"response.created", "response.in_progress",
		"response.output_item.added", "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done",
		"response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.delta",
		"response.function_call_arguments.done", "response.output_item.done",
		"response.output_item.added", "response.function_call_arguments.done", "response.output_item.done",
		"response.completed",
	}
	for _, size := range []int{1, 13, len(upstreamStream)} {
		var out bytes.Buffer
		s := Request{responses: true}.Converter(&out, created)
		for rest := upstreamStream; rest != ""; {
			n := min(size, len(rest))
			_, _ = s.Write([]byte(rest[:n]))
			rest = rest[n:]
		}
		if !s.Done() {
			t.Errorf("size %d: not done", size)
		}
		var types []string
		var last map[string]any
		for i, ev := range strings.Split(strings.TrimSuffix(out.String(), "\n\n"), "\n\n") {
			name, data, ok := strings.Cut(ev, "\ndata: ")
			name = strings.TrimPrefix(name, "event: ")
			var m map[string]any
			if !ok || json.Unmarshal([]byte(data), &m) != nil || m["type"] != name || m["sequence_number"] != float64(i) {
				t.Fatalf("event %d: %q", i, ev)
			}
			types = append(types, name)
			last = m
		}
		if strings.Join(types, " ") != strings.Join(want, " ") {
			t.Fatalf("size %d: events\n%v\nwant\n%v", size, types, want)
		}
		// Codex reads an added message item only with its content list.
		if !strings.Contains(out.String(), `"item":{"type":"message","id":"msg_9_0","status":"in_progress","role":"assistant","content":[]}`) {
			t.Errorf("size %d: no message item added with empty content:\n%s", size, out.String())
		}
		resp, _ := json.Marshal(last["response"])
		for _, sub := range []string{`"status":"completed"`, `"input_tokens":24`, `"output_tokens":30`, `"cached_tokens":8`,
			`"text":"Let me check."`, `"arguments":"{\"city\": \"Paris\"}"`, `"arguments":"{}"`, `"call_id":"toolu_b"`} {
			if !bytes.Contains(resp, []byte(sub)) {
				t.Errorf("completed response lacks %s: %s", sub, resp)
			}
		}
	}
}

func TestResponsesStreamError(t *testing.T) {
	var out bytes.Buffer
	s := Request{responses: true}.Converter(&out, created)
	in := strings.SplitAfter(upstreamStream, "\n\n")[0] +
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
	_, _ = s.Write([]byte(in))
	if !s.Done() || !strings.Contains(out.String(), "event: error\ndata: {\"type\":\"error\",\"sequence_number\":2,\"code\":\"overloaded\",\"message\":\"Overloaded\"}") ||
		!strings.Contains(out.String(), `"status":"failed"`) {
		t.Errorf("error: %s", out.String())
	}
}

// TestResponsesStreamReasoningAndAnswerTool: thinking streams as a reasoning
// item's summary; a forced answer tool's input streams as the message text.
func TestResponsesStreamReasoningAndAnswerTool(t *testing.T) {
	var out bytes.Buffer
	s := Request{responses: true, AnswerTool: AnswerTool}.Converter(&out, created)
	_, _ = s.Write([]byte(thinkingAndAnswerStream))
	got := out.String()
	for _, want := range []string{
		`"item":{"type":"reasoning","id":"rs_9_0","summary":[]}`,
		`event: response.reasoning_summary_text.delta` + "\n" + `data: {"type":"response.reasoning_summary_text.delta","sequence_number":4,"output_index":0,"item_id":"rs_9_0","summary_index":0,"delta":"Let me think."}`,
		`"item":{"type":"reasoning","id":"rs_9_0","summary":[{"type":"summary_text","text":"Let me think."}]}`,
		`"delta":"{\"name\":"`,
		`event: response.output_text.done` + "\n" + `data: {"type":"response.output_text.done","sequence_number":12,"output_index":1,"item_id":"msg_9_2","content_index":0,"text":"{\"name\":\"Ann\"}","logprobs":[]}`,
		`"status":"completed"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stream lacks %s", want)
		}
	}
	if strings.Contains(got, "Calling.") || strings.Contains(got, "function_call") {
		t.Errorf("the text beside the answer tool, or the tool as a call, was streamed:\n%s", got)
	}
	if t.Failed() {
		t.Log(got)
	}
}
