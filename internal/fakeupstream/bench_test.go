package fakeupstream

import (
	"bufio"
	"context"
	"io"
	"testing"
)

// BenchmarkStream measures one whole streamed answer through a real
// loopback connection: the fake's own cost, to subtract from proxy benchmarks.
func BenchmarkStream(b *testing.B) {
	s := Start(Options{})
	defer s.Close()
	s.AddAPIKey(testKey)
	for b.Loop() {
		resp, err := send(b, context.Background(), s, "POST", "/v1/messages", keyHeaders(testKey), streamBody())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := readEvents(bufio.NewReader(resp.Body)); err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
