package relay

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The upstream answers before it has read the body, then reads it slowly:
// the transport is still sending the body after Send returned and after
// the owner let go. The buffer must not be recycled (here: scribbled over,
// as the next request reading into it would) until the transport is done,
// and then exactly once.
func TestBodyIsRecycledOnlyWhenTheTransportIsDone(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB: more than the socket buffers hold
	got := make(chan []byte, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		_ = rc.Flush()
		time.Sleep(50 * time.Millisecond) // the owner lets go meanwhile
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer up.Close()

	buf := append([]byte(nil), want...)
	var frees atomic.Int32
	body := NewBody(buf, func(b []byte) {
		frees.Add(1)
		for i := range b {
			b[i] = 'X' // what reuse by the next request looks like
		}
	})
	rl := New(Config{DefaultURL: up.URL})
	call, err := rl.Send(context.Background(), httptest.NewRequest(http.MethodPost, "/v1/messages", nil), body, Target{Token: "k"})
	if err != nil {
		t.Fatal(err)
	}
	body.Release() // routing is done with it: no attempt follows
	if n := frees.Load(); n != 0 {
		t.Fatalf("recycled %d times while the transport was still sending it", n)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("the upstream read %d bytes that differ from the %d sent (first: %q)", len(b), len(want), b[:min(len(b), 16)])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream never read the body")
	}
	call.Close()
	deadline := time.Now().Add(5 * time.Second)
	for frees.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := frees.Load(); n != 1 {
		t.Fatalf("recycled %d times, want once after the transport closed it", n)
	}
}

// A body nobody sent goes back when its owner lets go; an empty one is
// sent as no body at all; one asked for after it went back is refused.
func TestBodyOwnerAndEmptyBody(t *testing.T) {
	var frees atomic.Int32
	b := NewBody([]byte("{}"), func([]byte) { frees.Add(1) })
	b.Release()
	if frees.Load() != 1 {
		t.Fatalf("frees = %d after the owner let go of an unsent body, want 1", frees.Load())
	}
	if _, ok := b.reader(); ok {
		t.Fatal("a recycled body gave a reader")
	}

	var length atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		length.Store(r.ContentLength)
	}))
	defer up.Close()
	empty := NewBody(nil, func([]byte) { frees.Add(1) })
	call, err := New(Config{DefaultURL: up.URL}).Send(context.Background(), httptest.NewRequest(http.MethodPost, "/v1/messages", nil), empty, Target{Token: "k"})
	if err != nil {
		t.Fatal(err)
	}
	call.Close()
	empty.Release()
	if length.Load() != 0 || frees.Load() != 2 {
		t.Fatalf("empty body: upstream Content-Length %d (want 0), frees %d (want 2)", length.Load(), frees.Load())
	}
}
