package openai

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// benchEvents is a Messages stream of a 200-delta text answer, one SSE
// event per element, as the upstream flushes them.
func benchEvents() []string {
	evs := strings.SplitAfter(upstreamStream, "\n\n")
	out := []string{evs[0], evs[1]}
	for i := range 200 {
		out = append(out, "event: content_block_delta\n"+
			fmt.Sprintf(`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word %d and some more text "}}`, i)+"\n\n")
	}
	out = append(out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":900}}\n\n",
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	return out
}

// firstWrite records when the first byte reaches the client side.
type firstWrite struct {
	at time.Time
	n  int
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if f.n == 0 && len(p) > 0 {
		f.at = time.Now()
	}
	f.n += len(p)
	return len(p), nil
}

// BenchmarkStream compares the converter with a plain SSE relay of the
// same stream: the upstream writes one event at a time into a pipe, the
// relay copies each read, the converter converts each read. first-chunk-ns
// is the time from the upstream's first event to the first byte written
// downstream: the converter must not wait for more than that one event.
func BenchmarkStream(b *testing.B) {
	evs := benchEvents()
	for _, mode := range []string{"relay", "convert"} {
		b.Run(mode, func(b *testing.B) {
			var first time.Duration
			buf := make([]byte, 32<<10)
			b.ReportAllocs()
			for b.Loop() {
				pr, pw := io.Pipe()
				started := make(chan time.Time, 1)
				go func() {
					started <- time.Now()
					for _, ev := range evs {
						_, _ = pw.Write([]byte(ev))
					}
					_ = pw.Close()
				}()
				out := &firstWrite{}
				var dst io.Writer = out
				if mode == "convert" {
					dst = NewStream(out, created, true)
				}
				for {
					n, err := pr.Read(buf)
					if n > 0 {
						_, _ = dst.Write(buf[:n])
					}
					if err != nil {
						break
					}
				}
				first += out.at.Sub(<-started)
			}
			b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "first-chunk-ns")
		})
	}
}

// TestStreamFirstChunkAfterFirstEvent is the benchmark's claim as a
// test: with the upstream stopped after its first event, the client
// already holds the first chunk.
func TestStreamFirstChunkAfterFirstEvent(t *testing.T) {
	evs := benchEvents()
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write([]byte(evs[0])) }() // then the upstream stalls
	out := &firstWrite{}
	s := NewStream(out, created, false)
	buf := make([]byte, 32<<10)
	n, _ := pr.Read(buf)
	_, _ = s.Write(buf[:n])
	if out.n == 0 {
		t.Fatal("the first upstream event produced nothing downstream")
	}
	_ = pw.Close()
}
