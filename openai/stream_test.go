package openai

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// upstreamStream is a Messages stream with text then two tool calls, as
// the API sends it (ping, provisional usage, cumulative output_tokens).
const upstreamStream = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_9","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":4,"cache_read_input_tokens":8,"output_tokens":1}}}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}` + "\n\n" +
	"event: ping\ndata: {\"type\": \"ping\"}\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}}` + "\n\n" +
	"event: content_block_delta\r\n" +
	`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"check."}}` + "\r\n\r\n" +
	"event: content_block_stop\n" +
	`data: {"type":"content_block_stop","index":0}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_a","name":"weather","input":{}}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}` + "\n\n" +
	"event: content_block_stop\n" +
	`data: {"type":"content_block_stop","index":1}` + "\n\n" +
	"event: content_block_start\n" +
	`data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_b","name":"time","input":{}}}` + "\n\n" +
	"event: content_block_delta\n" +
	`data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}` + "\n\n" +
	"event: content_block_stop\n" +
	`data: {"type":"content_block_stop","index":2}` + "\n\n" +
	"event: some_future_event\ndata: {\"type\":\"some_future_event\"}\n\n" +
	": a comment\n\n" +
	"event: message_delta\n" +
	`data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}}` + "\n\n" +
	"event: message_stop\n" +
	`data: {"type":"message_stop"}` + "\n\n"

const head = `"id":"chatcmpl-msg_9","object":"chat.completion.chunk","created":1767225600,"model":"claude-sonnet-4-5-20250929"`

var wantChunks = []string{
	`{` + head + `,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
	`{` + head + `,"choices":[{"index":0,"delta":{"content":"Let me "},"logprobs":null,"finish_reason":null}]}`,
	`{` + head + `,"choices":[{"index":0,"delta":{"content":"check."},"logprobs":null,"finish_reason":null}]}`,
	`{` + head + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_a","type":"function","function":{"name":"weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}`,
	`{` + head + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]},"logprobs":null,"finish_reason":null}]}`,
	`{` + head + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}]}`,
	`{` + head + `,"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"toolu_b","type":"function","function":{"name":"time","arguments":""}}]},"logprobs":null,"finish_reason":null}]}`,
	`{` + head + `,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}`,
}

const wantUsage = `{` + head + `,"choices":[],"usage":{"prompt_tokens":24,"completion_tokens":30,"total_tokens":54,"prompt_tokens_details":{"cached_tokens":8}}}`

// events splits converted output into its data payloads.
func events(t *testing.T, out string) []string {
	t.Helper()
	if !strings.HasSuffix(out, "\n\n") {
		t.Fatalf("output does not end an event: %q", out)
	}
	var got []string
	for _, ev := range strings.Split(strings.TrimSuffix(out, "\n\n"), "\n\n") {
		d, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(d, "\n") {
			t.Fatalf("not one data line: %q", ev)
		}
		got = append(got, d)
	}
	return got
}

func TestStream(t *testing.T) {
	for _, usage := range []bool{false, true} {
		want := append([]string(nil), wantChunks...)
		if usage {
			want = append(want, wantUsage)
		}
		want = append(want, "[DONE]")
		// Every chunking of the upstream bytes converts the same, and so
		// does the stream with CR line ends (read by internal/sse).
		crOnly := strings.ReplaceAll(strings.ReplaceAll(upstreamStream, "\r\n", "\n"), "\n", "\r")
		for _, size := range []int{1, 7, 64, len(upstreamStream), -1} {
			var out bytes.Buffer
			s := NewStream(&out, created, usage)
			src := upstreamStream
			if size < 0 {
				src, size = crOnly, 13
			}
			for rest := src; rest != ""; {
				n := min(size, len(rest))
				if k, err := s.Write([]byte(rest[:n])); err != nil || k != n {
					t.Fatalf("write: %d %v", k, err)
				}
				rest = rest[n:]
			}
			if !s.Done() {
				t.Errorf("size %d: not done", size)
			}
			got := events(t, out.String())
			if len(got) != len(want) {
				t.Fatalf("usage=%v size %d: %d events, want %d:\n%s", usage, size, len(got), len(want), out.String())
			}
			for i := range want {
				if want[i] == "[DONE]" {
					if got[i] != want[i] {
						t.Errorf("event %d = %s, want [DONE]", i, got[i])
					}
					continue
				}
				jsonEq(t, []byte(got[i]), want[i])
			}
		}
	}
}

// TestStreamNoBuffering: each event is written out by the Write that
// completes it, before any later upstream byte exists.
func TestStreamNoBuffering(t *testing.T) {
	var out bytes.Buffer
	s := NewStream(&out, created, false)
	evs := strings.SplitAfter(upstreamStream, "\n\n")
	first := evs[0]
	// Half an event produces nothing; its end produces the role chunk.
	_, _ = s.Write([]byte(first[:len(first)/2]))
	if out.Len() != 0 {
		t.Fatalf("wrote before the event was complete: %q", out.String())
	}
	_, _ = s.Write([]byte(first[len(first)/2:]))
	if got := events(t, out.String()); len(got) != 1 || !strings.Contains(got[0], `"role":"assistant"`) {
		t.Fatalf("after message_start: %q", out.String())
	}
	out.Reset()
	_, _ = s.Write([]byte(evs[1] + evs[2] + evs[3])) // block start, ping, first delta
	if got := events(t, out.String()); len(got) != 1 || !strings.Contains(got[0], `"content":"Let me "`) {
		t.Fatalf("after the first delta: %q", out.String())
	}
}

func TestStreamError(t *testing.T) {
	var out bytes.Buffer
	s := NewStream(&out, created, true)
	in := strings.SplitAfter(upstreamStream, "\n\n")[0] +
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	_, _ = s.Write([]byte(in))
	got := events(t, out.String())
	if len(got) != 2 || !s.Done() {
		t.Fatalf("got %q", out.String())
	}
	jsonEq(t, []byte(got[1]), `{"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":"overloaded"}}`)
	var v map[string]any
	if json.Unmarshal([]byte(got[0]), &v) != nil {
		t.Errorf("first chunk %q", got[0])
	}
}

// A stream that ends with message_stop but no message_delta still
// carries a finish_reason before [DONE].
func TestStreamWithoutMessageDelta(t *testing.T) {
	var out bytes.Buffer
	s := NewStream(&out, created, false)
	_, _ = s.Write([]byte(strings.SplitAfter(upstreamStream, "\n\n")[0] + "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
	got := events(t, out.String())
	if len(got) != 3 || !strings.Contains(got[1], `"finish_reason":"stop"`) || got[2] != "[DONE]" {
		t.Errorf("got %q", got)
	}
}

// appendString writes what encoding/json writes (without HTML escaping).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote \" backslash \\ nl \n cr \r tab \t", "\x00\x1f\x7f", "<b>&</b>", "\u2028\u2029", "é日本\U0001F600", "bad \xff utf8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendString(nil, s)), string(marshal(s)); got != want {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}
