package fakeupstream

import (
	"encoding/json"
	"strings"
	"testing"
)

const weatherTools = `"tools":[{"name":"weather","input_schema":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"}}}},{"name":"clock","input_schema":{"type":"object"}}]`

func TestReplyTools(t *testing.T) {
	cases := []struct {
		name, body string
		text       string
		calls      []string // name:input
	}{
		{"first tool by default",
			`{"model":"m","max_tokens":50,` + weatherTools + `,"messages":[{"role":"user","content":"Is it warm?"}]}`,
			"Calling weather.", []string{`weather:{"city":"Is it warm?"}`}},
		{"every tool the text names",
			`{"model":"m","max_tokens":50,` + weatherTools + `,"messages":[{"role":"user","content":"weather and clock please"}]}`,
			"Calling weather, clock.", []string{`weather:{"city":"weather and clock please"}`, `clock:{}`}},
		{"parallel disabled",
			`{"model":"m","max_tokens":50,` + weatherTools + `,"tool_choice":{"type":"auto","disable_parallel_tool_use":true},"messages":[{"role":"user","content":"weather and clock"}]}`,
			"Calling weather.", []string{`weather:{"city":"weather and clock"}`}},
		{"named choice",
			`{"model":"m","max_tokens":50,` + weatherTools + `,"tool_choice":{"type":"tool","name":"clock"},"messages":[{"role":"user","content":"weather?"}]}`,
			"Calling clock.", []string{`clock:{}`}},
		{"choice none answers text",
			`{"model":"m","max_tokens":50,` + weatherTools + `,"tool_choice":{"type":"none"},"messages":[{"role":"user","content":"hi"}]}`,
			"Hello from the fake upstream. You said: hi", nil},
		{"tool result answered",
			`{"model":"m","max_tokens":50,` + weatherTools + `,"messages":[{"role":"user","content":"weather?"},` +
				`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"weather","input":{"city":"Paris"}}]},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"18 degrees and sunny"}]}]}`,
			"Hello from the fake upstream. Tool said: 18 degrees and sunny", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ans, err := Reply([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			var calls []string
			for _, tc := range ans.Tools {
				calls = append(calls, tc.Name+":"+string(tc.Input))
				if !strings.HasPrefix(tc.ID, "toolu_") {
					t.Errorf("id %q", tc.ID)
				}
			}
			if ans.Text != c.text || strings.Join(calls, " ") != strings.Join(c.calls, " ") {
				t.Errorf("got %q %v, want %q %v", ans.Text, calls, c.text, c.calls)
			}
			if (len(c.calls) > 0) != (ans.StopReason == "tool_use") {
				t.Errorf("stop %s", ans.StopReason)
			}
			// The stream carries the same calls, input split in fragments.
			inputs := map[int]string{}
			for _, ev := range streamEvents("msg_x", ans, 3) {
				b, _ := json.Marshal(ev.data)
				var d struct {
					Index int
					Delta struct {
						Type        string
						PartialJSON string `json:"partial_json"`
					}
				}
				_ = json.Unmarshal(b, &d)
				if d.Delta.Type == "input_json_delta" {
					inputs[d.Index] += d.Delta.PartialJSON
				}
			}
			for k, tc := range ans.Tools {
				if inputs[k+1] != string(tc.Input) {
					t.Errorf("streamed input %d = %q, want %s", k+1, inputs[k+1], tc.Input)
				}
			}
		})
	}
}

func TestContentRules(t *testing.T) {
	cases := []struct{ name, messages, want string }{
		{"tool_result without its tool_use", `[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_x","content":"1"}]}]`, "corresponding `tool_use`"},
		{"tool_use in a user turn", `[{"role":"user","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]`, "only allowed in assistant"},
		{"image type", `[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/svg+xml","data":"AAAA"}}]}]`, "media_type"},
		{"image data", `[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"!!"}}]}]`, "base64"},
		{"image http", `[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"http://x"}}]}]`, "HTTPS"},
		{"empty text block", `[{"role":"user","content":[{"type":"text","text":""}]}]`, "non-empty"},
		{"bad role", `[{"role":"robot","content":"x"}]`, "role"},
		{"tool_use without tools", `[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]`, "must define tools"},
		{"a system message with a non-text block", `[{"role":"user","content":"x"},{"role":"system","content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}]`, "only text"},
	}
	for _, c := range cases {
		_, err := Reply([]byte(`{"model":"m","max_tokens":5,"messages":` + c.messages + `}`))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Reply([]byte(`{"model":"m","max_tokens":5,"tools":[{"name":"a b","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"x"}]}`)); err == nil {
		t.Error("bad tool name accepted")
	}
	if _, err := Reply([]byte(`{"model":"m","max_tokens":5,"tools":[{"name":"a","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"b"},"messages":[{"role":"user","content":"x"}]}`)); err == nil {
		t.Error("tool_choice naming an unknown tool accepted")
	}
}
