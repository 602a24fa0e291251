package sse

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

type event struct{ Name, Data string }

// parse feeds chunks to a parser with the given limit and skip filter and
// returns the events it dispatched.
func parse(max int, skip func([]byte) bool, chunks ...string) ([]event, *Parser) {
	var got []event
	p := NewParser(max, skip, func(name, data []byte) {
		got = append(got, event{string(name), string(data)})
	})
	for _, c := range chunks {
		b := []byte(c)
		_, _ = p.Write(b)
		for i := range b { // the parser must not keep the caller's bytes
			b[i] = 'Z'
		}
	}
	return got, p
}

func skipPing(name []byte) bool { return string(name) == "ping" }

func TestParser(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name   string
		max    int
		skip   func([]byte) bool
		chunks []string
		want   []event
	}{
		{name: "LF", chunks: []string{"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n"},
			want: []event{{"a", "1"}, {"b", "2"}}},
		{name: "CRLF", chunks: []string{"event: a\r\ndata: 1\r\n\r\nevent: b\r\ndata: 2\r\n\r\n"},
			want: []event{{"a", "1"}, {"b", "2"}}},
		{name: "CR", chunks: []string{"event: a\rdata: 1\r\revent: b\rdata: 2\r\r"},
			want: []event{{"a", "1"}, {"b", "2"}}},
		{name: "CRLF split between CR and LF", chunks: []string{"data: 1\r", "\n\r", "\ndata: 2\r\n\r\n"},
			want: []event{{"", "1"}, {"", "2"}}},
		{name: "CR then a new line in the next chunk", chunks: []string{"data: 1\r", "\r", "data: 2\r\r"},
			want: []event{{"", "1"}, {"", "2"}}},
		{name: "data lines joined, comments and unknown fields ignored",
			chunks: []string{": hi\nevent: m\nid: 7\nretry: 5\ndata: a\ndata:b\ndata:  c\nfoo: bar\n\n"},
			want:   []event{{"m", "a\nb\n c"}}},
		{name: "a field without a colon", chunks: []string{"data\n\n"}, want: []event{{"", ""}}},
		{name: "an event without data is not dispatched", chunks: []string{"event: a\n\ndata: 1\n\n"},
			want: []event{{"", "1"}}},
		{name: "an unterminated event is not dispatched", chunks: []string{"data: 1\n\ndata: 2\n"},
			want: []event{{"", "1"}}},
		{name: "an oversize line drops only its event", max: 50,
			chunks: []string{"event: a\ndata: " + long + "\n\nevent: b\ndata: ok\n\n"},
			want:   []event{{"b", "ok"}}},
		{name: "an oversize line in many chunks", max: 50,
			chunks: []string{"data: " + long[:40], long[40:80], long[80:] + "\n\ndata: ok\n\n"},
			want:   []event{{"", "ok"}}},
		{name: "data over the limit across lines drops the event", max: 50,
			chunks: []string{"event: a\ndata: " + long[:30] + "\ndata: " + long[:30] + "\n\ndata: ok\n\n"},
			want:   []event{{"", "ok"}}},
		{name: "an oversize comment is passed over", max: 50,
			chunks: []string{": " + long + "\ndata: ok\n\n"},
			want:   []event{{"", "ok"}}},
		{name: "skipped events are not dispatched", skip: skipPing,
			chunks: []string{"event: ping\ndata: {}\n\nevent: a\ndata: 1\n\n"},
			want:   []event{{"a", "1"}}},
		{name: "an event renamed after its data was skipped is dropped", skip: skipPing,
			chunks: []string{"event: ping\ndata: {}\nevent: a\ndata: 1\n\nevent: b\ndata: 2\n\n"},
			want:   []event{{"b", "2"}}},
		{name: "data before the name is never skipped", skip: skipPing,
			chunks: []string{"data: 1\nevent: a\n\n"},
			want:   []event{{"a", "1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := parse(tc.max, tc.skip, tc.chunks...)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			// Byte by byte reads the same.
			one := strings.Join(tc.chunks, "")
			var bytewise []string
			for i := range len(one) {
				bytewise = append(bytewise, one[i:i+1])
			}
			if got, _ := parse(tc.max, tc.skip, bytewise...); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("byte by byte: got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParserBoundsMemory(t *testing.T) {
	huge := strings.Repeat("y", 1<<20)
	_, p := parse(4096, nil, "data: "+huge, huge, "\n", "data: "+huge+"\n\n")
	if n := p.Held(); n > 3*4096 {
		t.Fatalf("parser holds %d bytes with a 4 KiB limit", n)
	}
}

func FuzzParser(f *testing.F) {
	f.Add("event: a\ndata: 1\n\n", uint(3))
	f.Add("event: a\r\ndata: 1\r\n\r\n: c\r\n", uint(9))
	f.Add("data: 1\r\rdata\r\r\n\n", uint(8))
	f.Add("event: ping\ndata: x\nevent: b\ndata: y\n\n", uint(12))
	f.Fuzz(func(t *testing.T, stream string, split uint) {
		const max = 64
		skip := func(name []byte) bool { return string(name) == "ping" }
		one, p := parse(max, skip, stream)
		cut := int(split % uint(len(stream)+1))
		two, _ := parse(max, skip, stream[:cut], stream[cut:])
		if fmt.Sprint(one) != fmt.Sprint(two) {
			t.Fatalf("one chunk %q, split at %d %q", one, cut, two)
		}
		for _, e := range one {
			if len(e.Data) > max || e.Name == "ping" {
				t.Fatalf("dispatched %q", e)
			}
		}
		if p.Held() > 8*max {
			t.Fatalf("holds %d bytes", p.Held())
		}
		// The same stream with CRLF or CR line ends reads the same.
		if !strings.Contains(stream, "\r") {
			for _, eol := range []string{"\r\n", "\r"} {
				other, _ := parse(max, skip, strings.ReplaceAll(stream, "\n", eol))
				if fmt.Sprint(other) != fmt.Sprint(one) {
					t.Fatalf("with %q line ends %q, with LF %q", eol, other, one)
				}
			}
		}
	})
}
