package relay

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// blackhole forwards TCP both ways until frozen, then swallows every byte
// while keeping the connections open: a peer that vanished without a FIN
// (a NAT that forgot the flow, a dead load balancer).
type blackhole struct {
	ln     net.Listener
	frozen atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, c, u)
			b.mu.Unlock()
			b.wg.Add(2)
			go b.pipe(u, c)
			go b.pipe(c, u)
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) pipe(dst, src net.Conn) {
	defer b.wg.Done()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !b.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// An HTTP/2 upstream connection that goes dead mid-stream is found by the
// transport's ping health check and the stream ends with an error event
// and a refund, instead of hanging until the idle timeout.
func TestHTTP2HealthCheckEndsStreamOnDeadConnection(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	t.Cleanup(up.Close) // after the blackhole's connections are closed (cleanups run last first)
	bh := newBlackhole(t, up.Listener.Addr().String())
	tr := newTransport(time.Minute, 200*time.Millisecond, 200*time.Millisecond)
	tr.TLSClientConfig = up.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	rl := New(Config{DefaultURL: "https://" + bh.ln.Addr().String(), Transport: tr})
	call, err := rl.Send(context.Background(), httptest.NewRequest(http.MethodPost, "/v1/messages", nil), []byte(`{}`), Target{Token: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if call.Resp.ProtoMajor != 2 {
		t.Fatalf("want HTTP/2, got %s", call.Resp.Proto)
	}
	rec := httptest.NewRecorder()
	done := make(chan Result, 1)
	go func() {
		done <- *rl.Copy(context.Background(), rec, call, Hooks{FirstByte: func() { bh.frozen.Store(true) }})
	}()
	var res Result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second): // a guard against a hang, not a timing assertion
		t.Fatal("the stream hung on a dead HTTP/2 connection")
	}
	if res.ReadErr == nil || res.Idle || !res.Refund {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(rec.Body.String(), "event: error") {
		t.Fatalf("body %q", rec.Body.String())
	}
}
