package usage

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// fullStream is a complete streamed response in the shape the API sends:
// message_start, a ping, a text block, a tool_use block, message_delta,
// message_stop.
const fullStream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":120,"cache_read_input_tokens":3000,"output_tokens":2}}}

event: ping
data: {"type": "ping"}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, let's check the weather"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" for San Francisco. \"usage\":{\"output_tokens\":999}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Fra"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

`

var fullUsage = Usage{InputTokens: 472, OutputTokens: 89, CacheCreationInputTokens: 120, CacheReadInputTokens: 3000}

type tapResult struct {
	usage   Usage
	ok      bool
	done    bool
	errType string
	errMsg  string
	errOK   bool
}

func resultOf(t *SSETap) tapResult {
	var r tapResult
	r.usage, r.ok = t.Usage()
	r.done = t.Done()
	r.errType, r.errMsg, r.errOK = t.Error()
	return r
}

// feed writes each chunk to a new tap, checking the io.Writer contract.
func feed(tb testing.TB, chunks ...[]byte) tapResult {
	tb.Helper()
	tap := NewSSETap()
	for _, c := range chunks {
		n, err := tap.Write(c)
		if n != len(c) || err != nil {
			tb.Fatalf("Write = %d, %v; want %d, nil", n, err, len(c))
		}
	}
	return resultOf(tap)
}

func whole(s string) [][]byte { return [][]byte{[]byte(s)} }

func byteByByte(s string) [][]byte {
	out := make([][]byte, len(s))
	for i := range len(s) {
		out[i] = []byte{s[i]}
	}
	return out
}

func randomSplits(s string, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out [][]byte
	for len(s) > 0 {
		n := 1 + r.IntN(min(len(s), 40))
		out = append(out, []byte(s[:n]))
		s = s[n:]
	}
	return out
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
func cr(s string) string   { return strings.ReplaceAll(s, "\n", "\r") }

func TestSSETapFullStream(t *testing.T) {
	want := tapResult{usage: fullUsage, ok: true, done: true}
	for _, ending := range []struct {
		name string
		conv func(string) string
	}{
		{"LF", func(s string) string { return s }},
		{"CRLF", crlf},
		{"CR", cr},
	} {
		s := ending.conv(fullStream)
		cases := map[string][][]byte{
			"whole":        whole(s),
			"byte by byte": byteByByte(s),
		}
		for seed := range uint64(20) {
			cases["random split "+string(rune('a'+seed))] = randomSplits(s, seed)
		}
		for name, chunks := range cases {
			t.Run(ending.name+"/"+name, func(t *testing.T) {
				if got := feed(t, chunks...); got != want {
					t.Fatalf("got %+v, want %+v", got, want)
				}
			})
		}
	}
}

// A CRLF split exactly between CR and LF must not produce an extra blank
// line (which would dispatch the event before its data).
func TestSSETapCRLFSplitBetweenCRAndLF(t *testing.T) {
	s := crlf(fullStream)
	var chunks [][]byte
	for {
		i := strings.Index(s, "\r\n")
		if i < 0 {
			chunks = append(chunks, []byte(s))
			break
		}
		chunks = append(chunks, []byte(s[:i+1]), []byte("\n"))
		s = s[i+2:]
	}
	got := feed(t, chunks...)
	if got.usage != fullUsage || !got.done {
		t.Fatalf("got %+v", got)
	}
}

func TestSSETapEvents(t *testing.T) {
	start := func(usage string) string {
		return "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":" + usage + "}}\n\n"
	}
	delta := func(usage string) string {
		return "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":" + usage + "}\n\n"
	}
	const stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	tests := []struct {
		name   string
		stream string
		want   tapResult
	}{
		{
			name:   "cumulative output overwrites, never adds",
			stream: start(`{"input_tokens":5,"output_tokens":1}`) + delta(`{"output_tokens":10}`) + delta(`{"output_tokens":25}`) + stop,
			want:   tapResult{usage: Usage{InputTokens: 5, OutputTokens: 25}, ok: true, done: true},
		},
		{
			name:   "delta overwrites input and cache fields it carries",
			stream: start(`{"input_tokens":5,"cache_read_input_tokens":7,"output_tokens":1}`) + delta(`{"input_tokens":6,"cache_creation_input_tokens":3,"output_tokens":4}`) + stop,
			want:   tapResult{usage: Usage{InputTokens: 6, OutputTokens: 4, CacheCreationInputTokens: 3, CacheReadInputTokens: 7}, ok: true, done: true},
		},
		{
			name: "cache writes split by TTL in message_start",
			stream: start(`{"input_tokens":5,"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200},"output_tokens":1}`) +
				delta(`{"output_tokens":4}`) + stop,
			want: tapResult{usage: Usage{InputTokens: 5, OutputTokens: 4, CacheCreationInputTokens: 300, CacheCreation1hInputTokens: 200}, ok: true, done: true},
		},
		{
			name:   "provisional output before message_delta",
			stream: start(`{"input_tokens":9,"output_tokens":1}`),
			want:   tapResult{usage: Usage{InputTokens: 9, OutputTokens: 1}, ok: true},
		},
		{
			name:   "no usage yet",
			stream: "event: ping\ndata: {\"type\":\"ping\"}\n\n",
			want:   tapResult{},
		},
		{
			name: "ping and unknown events ignored, even with usage-looking data",
			stream: start(`{"input_tokens":5,"output_tokens":1}`) +
				"event: ping\ndata: {\"type\":\"ping\",\"usage\":{\"output_tokens\":500}}\n\n" +
				"event: future_event\ndata: {\"type\":\"future_event\",\"usage\":{\"output_tokens\":700}}\n\n" +
				"event: content_block_delta\ndata: {\"usage\":{\"output_tokens\":800}}\n\n" +
				delta(`{"output_tokens":30}`) +
				"event: message_delta_v2\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":900}}\n\n" +
				stop,
			want: tapResult{usage: Usage{InputTokens: 5, OutputTokens: 30}, ok: true, done: true},
		},
		{
			name:   "event type taken from the JSON when no event field",
			stream: "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":8}}\n\ndata: {\"type\":\"message_stop\"}\n\n",
			want:   tapResult{usage: Usage{InputTokens: 3, OutputTokens: 8}, ok: true, done: true},
		},
		{
			name: "error mid-stream after a 200",
			stream: start(`{"input_tokens":5,"output_tokens":1}`) +
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n" +
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"second\"}}\n\n",
			want: tapResult{usage: Usage{InputTokens: 5, OutputTokens: 1}, ok: true, errType: "overloaded_error", errMsg: "Overloaded", errOK: true},
		},
		{
			name:   "unparsable error data still reports the error",
			stream: "event: error\ndata: upstream exploded\n\n",
			want:   tapResult{errOK: true},
		},
		{
			name:   "comments, id and retry fields ignored; no space after colon",
			stream: ": keep-alive\nid: 7\nretry: 1000\nevent:message_start\ndata:{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":4}}}\n\n",
			want:   tapResult{usage: Usage{InputTokens: 4}, ok: true},
		},
		{
			name:   "data split over several data lines is joined",
			stream: "event: message_delta\ndata: {\"type\":\"message_delta\",\ndata: \"usage\":{\"output_tokens\":12}}\n\n",
			want:   tapResult{usage: Usage{OutputTokens: 12}, ok: true},
		},
		{
			name:   "event without trailing blank line is not dispatched",
			stream: start(`{"input_tokens":5}`) + "event: message_delta\ndata: {\"usage\":{\"output_tokens\":12}}\n",
			want:   tapResult{usage: Usage{InputTokens: 5}, ok: true},
		},
		{
			name: "negative, fractional, string and huge counts are ignored",
			stream: start(`{"input_tokens":5,"output_tokens":1}`) +
				delta(`{"input_tokens":-3,"output_tokens":2.5,"cache_read_input_tokens":"7","cache_creation_input_tokens":1e300}`) +
				delta(`{"output_tokens":1e3}`),
			want: tapResult{usage: Usage{InputTokens: 5, OutputTokens: 1000}, ok: true},
		},
		{
			name:   "usage null or wrong type is not usage",
			stream: delta(`null`) + delta(`[1]`),
			want:   tapResult{},
		},
		{
			name:   "late event field renaming a skipped event drops it",
			stream: "event: ping\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":12}}\nevent: message_delta\n\n",
			want:   tapResult{},
		},
		{
			name:   "last event field wins",
			stream: "event: message_delta\nevent: ping\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":12}}\n\n",
			want:   tapResult{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for name, chunks := range map[string][][]byte{
				"whole":        whole(tc.stream),
				"byte by byte": byteByByte(tc.stream),
				"crlf split":   randomSplits(crlf(tc.stream), 1),
			} {
				if got := feed(t, chunks...); got != tc.want {
					t.Errorf("%s: got %+v, want %+v", name, got, tc.want)
				}
			}
		})
	}
}

func TestSSETapOversizeLine(t *testing.T) {
	huge := strings.Repeat("x", MaxLine+10)
	tests := []struct {
		name   string
		stream string
		want   tapResult
	}{
		{
			name: "oversize line inside a wanted event drops only that event",
			stream: "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
				"event: message_delta\ndata: {\"usage\":{\"output_tokens\":7},\"pad\":\"" + huge + "\"}\n\n" +
				"event: message_stop\ndata: {}\n\n",
			want: tapResult{usage: Usage{InputTokens: 5, OutputTokens: 1}, ok: true, done: true},
		},
		{
			name: "oversize comment line is skipped, the stream resumes after it",
			stream: ": " + huge + "\n\n" +
				"event: message_delta\ndata: {\"usage\":{\"output_tokens\":7}}\n\n",
			want: tapResult{usage: Usage{OutputTokens: 7}, ok: true},
		},
		{
			name: "data joined over many lines past the cap drops the event",
			stream: "event: message_delta\ndata: {\"usage\":{\"output_tokens\":7}}\n" +
				strings.Repeat("data: "+strings.Repeat("y", 1<<16)+"\n", 17) + "\n",
			want: tapResult{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tap := NewSSETap()
			for _, c := range randomSplits2(tc.stream, 4096) {
				_, _ = tap.Write(c)
				// The tap must never hold more than one capped line
				// plus one capped event's data.
				if n := tap.parser.Held(); n > 2*MaxLine+4096 {
					t.Fatalf("tap holds %d bytes", n)
				}
			}
			if got := resultOf(tap); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// randomSplits2 cuts s into chunks of size n (the last one shorter).
func randomSplits2(s string, n int) [][]byte {
	var out [][]byte
	for len(s) > n {
		out = append(out, []byte(s[:n]))
		s = s[n:]
	}
	return append(out, []byte(s))
}

// The tap must not keep the caller's buffer: the proxy reuses it for the
// next read.
func TestSSETapDoesNotRetainInput(t *testing.T) {
	tap := NewSSETap()
	buf := []byte(fullStream[:200]) // ends mid-line inside message_start's data
	_, _ = tap.Write(buf)
	copy(buf, bytes.Repeat([]byte{'Z'}, len(buf)))
	_, _ = tap.Write([]byte(fullStream[200:]))
	if got := resultOf(tap); got.usage != fullUsage {
		t.Fatalf("got %+v after the caller reused its buffer", got)
	}
}

// The handler may read the tap from another goroutine (a deferred recorder,
// a metrics scrape) while the stream is still being copied.
func TestSSETapConcurrentReaders(t *testing.T) {
	tap := NewSSETap()
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
				if u, _ := tap.Usage(); u.OutputTokens > fullUsage.OutputTokens {
					t.Errorf("transient usage %+v", u)
				}
				tap.Done()
				tap.Error()
			}
		}
	}()
	for _, c := range randomSplits(fullStream, 9) {
		_, _ = tap.Write(c)
	}
	close(stop)
	<-readerDone
	if got := resultOf(tap); got.usage != fullUsage || !got.done {
		t.Fatalf("got %+v", got)
	}
}
