// Command benchtool is the pieces of scripts/bench: the project's fake
// upstream in a fast mode, a bare httputil.ReverseProxy baseline, and a
// closed-loop load generator. It is a separate binary: nothing here is
// reachable from `claude-route serve`.
//
//	benchtool fake -addr-file F [-api-key K] [-chunks N] [-first-delay D] [-chunk-delay D]
//	benchtool bare -upstream URL -addr-file F
//	benchtool load -url URL -key K -c N -d D [-stream]     one JSON line of figures
//	benchtool hold -url URL -key K -c N -total N [-stats URL] [-pid P]
//	    keeps c streams open until total streams have run; samples RSS
//	    and goroutines while they are all open
//	benchtool scale -url URL -admin TOKEN -redis ADDR -product DIR [-n N]
//	    issue 27's figures at N keys (scripts/bench scale)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/claude-route/claude-route/internal/fakeupstream"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool fake|bare|load|hold [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "fake":
		err = runFake(ctx, os.Args[2:])
	case "bare":
		err = runBare(ctx, os.Args[2:])
	case "load":
		err = runLoad(ctx, os.Args[2:])
	case "hold":
		err = runHold(ctx, os.Args[2:])
	case "scale":
		err = runScale(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

// listen binds addr and writes the bound address to file (port 0 = free).
func listen(addr, file string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if file != "" {
		if err := os.WriteFile(file, []byte(ln.Addr().String()), 0o600); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}

// statsHandler reports the process's goroutines and memory, so the bare
// proxy is measured the way claude-route's /metrics is.
func statsHandler(w http.ResponseWriter, _ *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"goroutines": runtime.NumGoroutine(), "mallocs": ms.Mallocs, "heap_inuse": ms.HeapInuse,
	})
}

func runFake(ctx context.Context, args []string) error {
	fs := newFlags("fake")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	addrFile := fs.String("addr-file", "", "write the bound address here")
	key := fs.String("api-key", "sk-ant-api03-bench", "API keys the fake accepts, comma-separated")
	chunks := fs.Int("chunks", 20, "content_block_delta events per stream")
	first := fs.Duration("first-delay", 0, "time to the first event of a stream")
	delay := fs.Duration("chunk-delay", 0, "pause between events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fake := fakeupstream.New(fakeupstream.Options{NoRecord: true, Chunks: *chunks, FirstDelay: *first, ChunkDelay: *delay})
	for _, k := range strings.Split(*key, ",") {
		fake.AddAPIKey(k)
	}
	defer fake.Close()
	ln, err := listen(*addr, *addrFile)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/bench/stats", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]int{"messages": fake.MessageCount(), "cancelled": fake.Cancelled()})
	})
	mux.Handle("/", fake)
	return serve(ctx, ln, mux)
}

func runBare(ctx context.Context, args []string) error {
	fs := newFlags("bare")
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	addrFile := fs.String("addr-file", "", "write the bound address here")
	upstream := fs.String("upstream", "", "upstream base URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-upstream: want a URL, got %q", *upstream)
	}
	// The physical limit of a Go hop: what any Go proxy pays at least.
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	rp.Transport = tr
	rp.BufferPool = newBufPool()
	ln, err := listen(*addr, *addrFile)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/bench/stats", statsHandler)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// See golang/go#40747: a body streamed in while the answer streams out.
		_ = http.NewResponseController(w).EnableFullDuplex()
		rp.ServeHTTP(w, r)
	})
	return serve(ctx, ln, mux)
}

func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return hs.Close()
	}
}
