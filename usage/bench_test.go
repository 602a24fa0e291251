package usage

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// benchStream is a long streamed answer: message_start, 2000 text deltas of
// typical size, pings, message_delta, message_stop, split into one chunk per
// event as the upstream flushes them.
func benchStream() [][]byte {
	var events []string
	events = append(events, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":2048,\"cache_read_input_tokens\":1000,\"output_tokens\":1}}}\n\n")
	events = append(events, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for i := range 2000 {
		if i%100 == 0 {
			events = append(events, "event: ping\ndata: {\"type\": \"ping\"}\n\n")
		}
		text := strings.Repeat("word ", 3+i%12)
		events = append(events, fmt.Sprintf("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":%q}}\n\n", text))
	}
	events = append(events,
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4000}}\n\n",
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	out := make([][]byte, len(events))
	for i, e := range events {
		out[i] = []byte(e)
	}
	return out
}

// chunkReader returns at most one chunk per Read, like a response body
// read as the upstream sends it.
type chunkReader struct {
	chunks [][]byte
	i, off int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for r.i < len(r.chunks) && r.off == len(r.chunks[r.i]) {
		r.i, r.off = r.i+1, 0
	}
	if r.i == len(r.chunks) {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[r.i][r.off:])
	r.off += n
	return n, nil
}

// discard hides io.Discard's ReadFrom so both runs copy through buf.
type discard struct{ io.Writer }

// BenchmarkSSETap measures copying a stream through the tap and reports its
// cost relative to a plain io.Copy of the same stream to io.Discard as
// x-copy (1.0 would mean no overhead).
func BenchmarkSSETap(b *testing.B) {
	chunks := benchStream()
	var size int64
	for _, c := range chunks {
		size += int64(len(c))
	}
	buf := make([]byte, 32<<10)
	copyStream := func(withTap bool) {
		var dst io.Writer = discard{io.Discard}
		var tap *SSETap
		if withTap {
			tap = NewSSETap()
			dst = io.MultiWriter(dst, tap)
		}
		if _, err := io.CopyBuffer(dst, &chunkReader{chunks: chunks}, buf); err != nil {
			b.Fatal(err)
		}
		if tap != nil {
			if u, ok := tap.Usage(); !ok || u.OutputTokens != 4000 || !tap.Done() {
				b.Fatalf("tap read %+v %v", u, ok)
			}
		}
	}
	// Each iteration copies the stream once plainly and once through the
	// tap, interleaved so both see the same machine load; ns/op covers
	// both, tap-ns/op and copy-ns/op split it.
	b.SetBytes(2 * size)
	b.ReportAllocs()
	var base, tapped time.Duration
	for b.Loop() {
		start := time.Now()
		copyStream(false)
		mid := time.Now()
		copyStream(true)
		base += mid.Sub(start)
		tapped += time.Since(mid)
	}
	b.ReportMetric(float64(tapped)/float64(base), "x-copy")
	b.ReportMetric(float64(tapped.Nanoseconds())/float64(b.N), "tap-ns/op")
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "copy-ns/op")
}
