package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// jsonEq compares two JSON texts by value.
func jsonEq(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestConvertRequest(t *testing.T) {
	const png = "iVBORw0KGgo="
	cases := []struct {
		name, in, want string
	}{
		{"plain string, default max_tokens",
			`{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hi"}]}`,
			`{"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[{"role":"user","content":"Hi"}]}`},
		{"system and developer joined in order into system",
			`{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"Use French."}]},{"role":"user","content":"Hi"},{"role":"system","content":"Late rule."}]}`,
			`{"model":"m","max_tokens":4096,"system":"Be brief.\n\nUse French.\n\nLate rule.","messages":[{"role":"user","content":"Hi"}]}`},
		{"consecutive same-role turns merged",
			`{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":[{"type":"text","text":"b"}]},{"role":"assistant","content":"c"},{"role":"assistant","content":"d"}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}]}]}`},
		{"image data URL keeps media type; https URL is a url source; detail ignored",
			`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What is it?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` + png + `","detail":"high"}},{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"What is it?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + png + `"}},{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]}`},
		{"tools, tool_calls, tool results, named choice, parallel off",
			`{"model":"m","messages":[
				{"role":"user","content":"Weather in Paris and Rome?"},
				{"role":"assistant","content":null,"tool_calls":[
					{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\": \"Paris\"}"}},
					{"id":"call_2","type":"function","function":{"name":"weather","arguments":""}}]},
				{"role":"tool","tool_call_id":"call_1","content":"18C"},
				{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"21C"}]},
				{"role":"user","content":"Thanks"}],
			 "tools":[{"type":"function","function":{"name":"weather","description":"Weather now","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
			          {"type":"function","function":{"name":"noargs"}}],
			 "tool_choice":{"type":"function","function":{"name":"weather"}},"parallel_tool_calls":false}`,
			`{"model":"m","max_tokens":4096,"messages":[
				{"role":"user","content":"Weather in Paris and Rome?"},
				{"role":"assistant","content":[
					{"type":"tool_use","id":"call_1","name":"weather","input":{"city":"Paris"}},
					{"type":"tool_use","id":"call_2","name":"weather","input":{}}]},
				{"role":"user","content":[
					{"type":"tool_result","tool_use_id":"call_1","content":"18C"},
					{"type":"tool_result","tool_use_id":"call_2","content":"21C"},
					{"type":"text","text":"Thanks"}]}],
			 "tools":[{"name":"weather","description":"Weather now","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},
			          {"name":"noargs","input_schema":{"type":"object","properties":{}}}],
			 "tool_choice":{"type":"tool","name":"weather","disable_parallel_tool_use":true}}`},
		{"tool_choice required is any; parallel off without a choice is auto",
			`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"any"}}`},
		{"parallel_tool_calls false alone",
			`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"parallel_tool_calls":false}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`},
		{"tool_choice none and auto",
			`{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","parallel_tool_calls":false}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"none"}}`},
		{"parameters: max_completion_tokens wins, temperature, top_p, stop string, user, stream",
			`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":10,"max_completion_tokens":20,"temperature":0.5,"top_p":0.9,"stop":"END","user":"u-1","stream":true,"stream_options":{"include_usage":true}}`,
			`{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"x"}],"metadata":{"user_id":"u-1"},"stop_sequences":["END"],"stream":true,"temperature":0.5,"top_p":0.9}`},
		{"stop list; nulls and neutral values and hints accepted",
			`{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5,"stop":["a","b"],"n":1,"logprobs":false,"presence_penalty":0,"frequency_penalty":0,"logit_bias":{},"seed":7,"service_tier":"auto","store":false,"metadata":{"a":"b"},"response_format":{"type":"text"},"tools":null,"temperature":null}`,
			`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"stop_sequences":["a","b"]}`},
		{"assistant refusal part and text parts",
			`{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"refusal","refusal":"No."}]},{"role":"user","content":"y"}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"No."},{"role":"user","content":"y"}]}`},
		{"HTML characters are not escaped",
			`{"model":"m","messages":[{"role":"user","content":"<b>&</b>"}]}`,
			`{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":"<b>&</b>"}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ConvertRequest([]byte(c.in), RequestOptions{})
			if err != nil {
				t.Fatalf("error %d %s (param %s)", err.Status, err.Message, err.Param)
			}
			jsonEq(t, got.Body, c.want)
			if strings.Contains(string(got.Body), `\u003c`) {
				t.Errorf("HTML escaped: %s", got.Body)
			}
		})
	}
}

func TestConvertRequestFlagsAndAliases(t *testing.T) {
	got, err := ConvertRequest([]byte(`{"model":"sonnet","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`),
		RequestOptions{MaxTokens: 100, Model: func(m string) string {
			if m == "sonnet" {
				return "claude-sonnet-4-5-20250929"
			}
			return m
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Stream || !got.IncludeUsage || got.Model != "claude-sonnet-4-5-20250929" {
		t.Errorf("%+v", got)
	}
	jsonEq(t, got.Body, `{"model":"claude-sonnet-4-5-20250929","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"x"}]}`)
}

func TestConvertRequestRefuses(t *testing.T) {
	cases := []struct {
		name, in, param, msg string
	}{
		{"not an object", `[1]`, "", "JSON object"},
		{"no model", `{"messages":[{"role":"user","content":"x"}]}`, "model", "field required"},
		{"empty model", `{"model":" ","messages":[{"role":"user","content":"x"}]}`, "model", "model name"},
		{"no messages", `{"model":"m"}`, "messages", "field required"},
		{"empty messages", `{"model":"m","messages":[]}`, "messages", "at least one"},
		{"only system", `{"model":"m","messages":[{"role":"system","content":"x"}]}`, "messages", "user or assistant"},
		{"n > 1", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n", "Unsupported parameter for Claude models: n"},
		{"logprobs", `{"model":"m","logprobs":true,"top_logprobs":2,"messages":[{"role":"user","content":"x"}]}`, "logprobs", "logprobs, top_logprobs"},
		{"presence_penalty", `{"model":"m","presence_penalty":0.5,"messages":[{"role":"user","content":"x"}]}`, "presence_penalty", "presence_penalty"},
		{"frequency_penalty", `{"model":"m","frequency_penalty":1,"messages":[{"role":"user","content":"x"}]}`, "frequency_penalty", "frequency_penalty"},
		{"logit_bias", `{"model":"m","logit_bias":{"1":2},"messages":[{"role":"user","content":"x"}]}`, "logit_bias", "logit_bias"},
		{"unknown response_format", `{"model":"m","response_format":{"type":"yaml"},"messages":[{"role":"user","content":"x"}]}`, "response_format", "yaml"},
		{"json_schema without a schema", `{"model":"m","response_format":{"type":"json_schema","json_schema":{"name":"x"}},"messages":[{"role":"user","content":"x"}]}`, "response_format", "schema"},
		{"unknown reasoning_effort", `{"model":"m","reasoning_effort":"extreme","messages":[{"role":"user","content":"x"}]}`, "reasoning_effort", "extreme"},
		{"audio out", `{"model":"m","modalities":["text","audio"],"messages":[{"role":"user","content":"x"}]}`, "modalities", "modalities"},
		{"legacy functions", `{"model":"m","functions":[],"messages":[{"role":"user","content":"x"}]}`, "functions", "functions"},
		{"unknown parameter", `{"model":"m","frobnicate":1,"messages":[{"role":"user","content":"x"}]}`, "frobnicate", "Unrecognized request argument supplied: frobnicate"},
		{"temperature above 1", `{"model":"m","temperature":1.5,"messages":[{"role":"user","content":"x"}]}`, "temperature", "0 to 1"},
		{"max_tokens zero", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens", "at least 1"},
		{"max_tokens fraction", `{"model":"m","max_completion_tokens":1.5,"messages":[{"role":"user","content":"x"}]}`, "max_completion_tokens", "integer"},
		{"bad role", `{"model":"m","messages":[{"role":"robot","content":"x"}]}`, "messages[0].role", "robot"},
		{"function role", `{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].role", "deprecated"},
		{"tool without id", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","content":"y"}]}`, "messages[1].tool_call_id", "required"},
		{"empty user content", `{"model":"m","messages":[{"role":"user","content":""}]}`, "messages[0].content", "empty"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, "messages[0].content[0].type", "input_audio"},
		{"http image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url", "https"},
		{"svg image", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/svg+xml;base64,AAAA"}}]}]}`, "messages[0].content[0].image_url.url", "image/svg+xml"},
		{"data URL not base64", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url", "base64"},
		{"bad arguments", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[1].tool_calls[0].function.arguments", "JSON object"},
		{"image in system", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},{"role":"user","content":"x"}]}`, "messages[0].content[0].type", "only text"},
		{"non-function tool", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{"name":"x"}}]}`, "tools[0].type", "custom"},
		{"bad tool_choice", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"}`, "tool_choice", "sometimes"},
		{"named choice without tools", `{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"f"}}}`, "tool_choice", "not in tools"},
		{"tool result for no call", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c2","content":"y"}]}`, "messages[2].tool_call_id", "c2"},
		{"tool result after a later assistant turn", `{"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"y"},{"role":"assistant","content":"ok"},{"role":"tool","tool_call_id":"c1","content":"again"}]}`, "messages[4].tool_call_id", "c1"},
		{"bad image base64", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@"}}]}]}`, "messages[0].content[0].image_url.url", "base64"},
		{"bad tool name", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a b"}}]}`, "tools[0].function.name", "letters"},
		{"schema not an object", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a","parameters":{"type":"string"}}}]}`, "tools[0].function.parameters", "object"},
		{"stream_options without stream", `{"model":"m","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`, "stream_options", "stream is true"},
		{"stop not strings", `{"model":"m","stop":[1],"messages":[{"role":"user","content":"x"}]}`, "stop", "stop"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ConvertRequest([]byte(c.in), RequestOptions{})
			if err == nil {
				t.Fatal("converted, want a 400")
			}
			if err.Status != 400 || err.Type != "invalid_request_error" || err.Param != c.param || !strings.Contains(err.Message, c.msg) {
				t.Errorf("got %d %s param=%q %q; want param %q, message containing %q", err.Status, err.Type, err.Param, err.Message, c.param, c.msg)
			}
			var body struct {
				Error struct {
					Message, Type string
					Param, Code   *string
				}
			}
			if json.Unmarshal(err.JSON(), &body) != nil || body.Error.Message != err.Message || (c.param != "") != (body.Error.Param != nil) {
				t.Errorf("error JSON %s", err.JSON())
			}
		})
	}
}
