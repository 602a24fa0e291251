package openai

import (
	"encoding/json"
	"testing"

	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// FuzzConvertRequest: any body either converts into a Messages body the
// (faithful) fake upstream accepts, or is refused with a 400 in OpenAI's
// shape; nothing panics.
func FuzzConvertRequest(f *testing.F) {
	seeds := []string{
		`{"model":"m","messages":[{"role":"user","content":"Hi"}]}`,
		`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"c1","content":"r"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required","parallel_tool_calls":false}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a"],"temperature":0.2,"top_p":1,"user":"u","max_completion_tokens":9,"n":1}`,
		`{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":"d"}]},{"role":"user","content":"x"},{"role":"user","content":"y"}],"tool_choice":{"type":"function","function":{"name":"g"}},"tools":[{"type":"function","function":{"name":"g"}}]}`,
		`{"model":"m","n":3,"messages":[]}`, `[]`, `null`, `{"model":1}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ConvertRequest(body, RequestOptions{})
		if err != nil {
			if err.Status != 400 || err.Message == "" {
				t.Fatalf("refusal %+v", err)
			}
			var e struct {
				Error struct{ Message, Type string }
			}
			if json.Unmarshal(err.JSON(), &e) != nil || e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
				t.Fatalf("error JSON %s", err.JSON())
			}
			return
		}
		ans, rerr := fakeupstream.Reply(req.Body)
		if rerr != nil {
			t.Fatalf("converted %s\ninto %s\nwhich the upstream refuses: %v", body, req.Body, rerr)
		}
		if ans.Model != req.Model || ans.Stream != req.Stream {
			t.Fatalf("model/stream %q %v vs %q %v", ans.Model, ans.Stream, req.Model, req.Stream)
		}
	})
}

// FuzzConvertResponsesRequest: as FuzzConvertRequest, for the Responses API.
func FuzzConvertResponsesRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":"Hi","instructions":"s"}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"data:image/png;base64,iVBORw0KGgo="}]}],"stream":true}`,
		`{"model":"m","input":[{"role":"user","content":"x"},{"type":"function_call","call_id":"c1","name":"f","arguments":"{\"a\":1}"},{"type":"function_call_output","call_id":"c1","output":"r"}],"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":"required","parallel_tool_calls":false}`,
		`{"model":"m","input":[{"role":"user","content":"x"},{"type":"function_call","call_id":"c.1","name":"f","arguments":""},{"type":"function_call_output","call_id":"c.1","output":[{"type":"input_text","text":"r"}]}]}`,
		`{"model":"claude-sonnet-4-5","input":"x","text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"}}},"reasoning":{"effort":"high"},"max_output_tokens":3000}`,
		`{"model":"m","input":"x","text":{"format":{"type":"json_object"}},"temperature":0.5,"top_p":1}`,
		`{"model":"m","input":[{"type":"reasoning","summary":[]},{"role":"developer","content":"d"}]}`,
		`{"model":"m","previous_response_id":"r","input":"x"}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ConvertResponsesRequest(body, RequestOptions{})
		if err != nil {
			if err.Status != 400 || err.Message == "" || err.Type != "invalid_request_error" {
				t.Fatalf("refusal %+v", err)
			}
			return
		}
		ans, rerr := fakeupstream.Reply(req.Body)
		if rerr != nil {
			t.Fatalf("converted %s\ninto %s\nwhich the upstream refuses: %v", body, req.Body, rerr)
		}
		if ans.Model != req.Model || ans.Stream != req.Stream {
			t.Fatalf("model/stream %q %v vs %q %v", ans.Model, ans.Stream, req.Model, req.Stream)
		}
	})
}
