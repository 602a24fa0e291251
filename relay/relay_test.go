package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

func TestRefund(t *testing.T) {
	broke := errors.New("unexpected EOF")
	for _, c := range []struct {
		name string
		f    Facts
		want bool
	}{
		{"200 JSON answer counts", Facts{Status: 200}, false},
		{"200 stream with message_stop counts", Facts{Status: 200, SSE: true, SawStop: true}, false},
		{"stream ending with event: error", Facts{Status: 200, SSE: true, SawError: true}, true},
		{"stream with message_stop then event: error", Facts{Status: 200, SSE: true, SawStop: true, SawError: true}, true},
		{"stream ending without message_stop", Facts{Status: 200, SSE: true}, true},
		{"stream broken mid-way", Facts{Status: 200, SSE: true, Transport: broke}, true},
		{"stream broken after message_stop counts", Facts{Status: 200, SSE: true, SawStop: true, Transport: broke}, false},
		{"stream cut at shutdown", Facts{Status: 200, SSE: true, Transport: context.Canceled, Shutdown: true}, true},
		{"stream cut at shutdown, client gone with it", Facts{Status: 200, SSE: true, Shutdown: true, ClientGone: true}, true},
		{"stream cut at shutdown after message_stop counts", Facts{Status: 200, SSE: true, SawStop: true, Shutdown: true}, false},
		{"stream idle timeout", Facts{Status: 200, SSE: true, Transport: ErrIdle}, true},
		{"JSON answer broken mid-way", Facts{Status: 200, Transport: broke}, true},
		{"client abandoned mid-stream", Facts{Status: 200, SSE: true, ClientGone: true}, false},
		{"client abandoned before upstream headers", Facts{Status: 0, Transport: context.Canceled, ClientGone: true}, false},
		{"client abandoned an upstream error", Facts{Status: 529, ClientGone: true}, false},
		{"400 invalid_request_error", Facts{Status: 400}, true},
		{"413", Facts{Status: 413}, true},
		{"404", Facts{Status: 404}, true},
		{"429", Facts{Status: 429}, true},
		{"500", Facts{Status: 500}, true},
		{"529", Facts{Status: 529}, true},
		{"proxy's own 503 (account failed)", Facts{Status: 503}, true},
		{"connection refused", Facts{Status: 0, Transport: errors.New("connection refused")}, true},
		{"header timeout", Facts{Status: 0, Transport: context.DeadlineExceeded}, true},
		{"redirect not followed", Facts{Status: 307}, true},
	} {
		if got := Refund(c.f); got != c.want {
			t.Errorf("%s: Refund(%+v) = %v, want %v", c.name, c.f, got, c.want)
		}
	}
}

// NeverSent is the retry policy's one fact about a failed call: only a
// connection that could not be made proves the upstream never saw it.
func TestNeverSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	_ = ln.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
	}))
	defer slow.Close()
	rl := New(Config{HeaderTimeout: 100 * time.Millisecond})
	in := httptest.NewRequest(http.MethodPost, "/v1/messages", nil)
	_, err = rl.Send(context.Background(), in, []byte(`{}`), Target{BaseURL: refused, Token: "k"})
	if err == nil || !NeverSent(err) {
		t.Fatalf("a refused connection never reached the upstream: %v", err)
	}
	_, err = rl.Send(context.Background(), in, []byte(`{}`), Target{BaseURL: slow.URL, Token: "k"})
	if err == nil || NeverSent(err) || !IsTimeout(err) {
		t.Fatalf("a header timeout may have been worked on: %v", err)
	}
	if a := Judge(context.Background(), nil, err, time.Now()); a.Kind != Lost || !a.Failure {
		t.Fatalf("a header timeout is Lost (never re-sent), a failure: %+v", a)
	}
}

// Cut ends a call waiting for headers with ErrShutdown, and any call
// made after it.
func TestCutEndsCallsInFlight(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer slow.Close()
	defer close(release)
	rl := New(Config{})
	send := func() error {
		_, err := rl.Send(context.Background(), httptest.NewRequest(http.MethodPost, "/v1/messages", nil), []byte(`{}`), Target{BaseURL: slow.URL, Token: "k"})
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- send() }()
	<-arrived
	rl.Cut()
	for i, err := range []error{<-errc, send()} {
		if !errors.Is(err, ErrShutdown) {
			t.Fatalf("call %d: a cut call fails with ErrShutdown: %v", i, err)
		}
		if a := Judge(context.Background(), nil, err, time.Now()); a.Kind != Shutdown {
			t.Fatalf("call %d judged %+v", i, a)
		}
	}
}

func TestOutboundHeadersDropFoldedCredentials(t *testing.T) {
	in := http.Header{}
	for _, k := range []string{"x_api_key", "X-Api_Key", "X-API-KEY", "authorization", "AUTHORIZATION", "Cookie", "proxy_authorization", "Proxy-Authorization"} {
		in[k] = []string{"client-secret"} // raw names, as a lenient client sends them
	}
	in.Set("Anthropic-Beta", "tools-2024")
	in.Set("Anthropic-Version", "2023-06-01")
	in.Set("Connection", "X-Hop")
	in.Set("X-Hop", "1")
	out := OutboundHeaders(in)
	for k, vv := range out {
		for _, v := range vv {
			if v == "client-secret" {
				t.Errorf("client credential header %q forwarded", k)
			}
		}
	}
	if out.Get("X-Hop") != "" || out.Get("Connection") != "" {
		t.Error("hop-by-hop headers forwarded")
	}
	if out.Get("Anthropic-Version") != "2023-06-01" {
		t.Error("the client's own headers must pass")
	}
	setCredential(out, Target{OAuth: true, Token: "tok"})
	if out.Get("Authorization") != "Bearer tok" || out.Get("Anthropic-Beta") != "tools-2024,"+OAuthBeta {
		t.Errorf("oauth credential: %v", out)
	}
	h := http.Header{}
	setCredential(h, Target{Token: "sk-key"})
	if h.Get("X-Api-Key") != "sk-key" || h.Get("Authorization") != "" {
		t.Errorf("api key credential: %v", h)
	}
}

func TestResponseHeaderAllowlist(t *testing.T) {
	src := http.Header{}
	for k, v := range map[string]string{
		"Content-Type": "application/json", "Request-Id": "req_1", "Anthropic-Version": "2023-06-01",
		"Anthropic-Ratelimit-Unified-Status": "allowed", "Anthropic-Ratelimit-Unified-5h-Utilization": "0.4",
		"Anthropic-Ratelimit-Requests-Remaining": "10", "Anthropic-Organization-Id": "org-secret",
		"Retry-After": "5", "Set-Cookie": "x=1", "X-Something-New": "1", "Content-Length": "12",
	} {
		src.Set(k, v)
	}
	ok := http.Header{}
	CopyResponseHeaders(ok, src, 200)
	for _, k := range []string{"Content-Type", "Request-Id", "Anthropic-Version"} {
		if ok.Get(k) == "" {
			t.Errorf("%s dropped", k)
		}
	}
	for k := range ok {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "anthropic-ratelimit") || lk == "anthropic-organization-id" ||
			lk == "set-cookie" || lk == "x-something-new" || lk == "retry-after" {
			t.Errorf("%s must not reach the customer of a 200", k)
		}
	}
	if ok.Get("Content-Length") != "12" {
		t.Error("a whole answer keeps its length")
	}
	src.Set("Content-Type", "text/event-stream")
	stream := http.Header{}
	CopyResponseHeaders(stream, src, 200)
	if stream.Get("Content-Length") != "" {
		t.Error("a stream may end with the proxy's error event: no length promised")
	}
	src.Set("Content-Type", "application/json")
	bad := http.Header{}
	CopyResponseHeaders(bad, src, 529)
	if bad.Get("Retry-After") != "5" || bad.Get("Anthropic-Organization-Id") != "" {
		t.Errorf("error answer headers: %v", bad)
	}
	// The copies share one backing array: adding a value to one header
	// (the server adds its own) changes no other, nor the upstream's.
	for k := range bad {
		bad.Add(k, "added")
	}
	for k, vv := range bad {
		if len(vv) != 2 || vv[0] != src.Get(k) || vv[1] != "added" {
			t.Errorf("%s = %q after an Add, want [%q added]", k, vv, src.Get(k))
		}
		if src.Values(k)[0] == "added" || len(src.Values(k)) != 1 {
			t.Errorf("upstream's %s changed: %q", k, src.Values(k))
		}
	}
}

// An upstream answering 307 to another host must not hand that host the
// account's API key: redirects are never followed.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "" || r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
	}))
	defer other.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer up.Close()
	rl := New(Config{DefaultURL: up.URL})
	in := httptest.NewRequest(http.MethodPost, "/v1/messages", nil)
	call, err := rl.Send(context.Background(), in, []byte(`{}`), Target{Token: "sk-ant-api03-secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	if call.Resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("status %d, want the 307 itself", call.Resp.StatusCode)
	}
	if leaked.Load() != 0 {
		t.Fatal("the redirect target received the account's credential")
	}
}

func TestTransportHasHTTP2HealthChecks(t *testing.T) {
	tr := NewTransport(time.Minute)
	if tr.HTTP2 == nil || tr.HTTP2.SendPingTimeout <= 0 || tr.HTTP2.PingTimeout <= 0 || !tr.ForceAttemptHTTP2 {
		t.Fatalf("HTTP/2 health checks off: %+v", tr.HTTP2)
	}
	if tr.ResponseHeaderTimeout != time.Minute {
		t.Fatalf("header timeout %s", tr.ResponseHeaderTimeout)
	}
}

// A stream from which nothing comes for the idle timeout (on the clock) is
// ended with an error event and refunded; the upstream call is cancelled.
func TestIdleTimeoutEndsStream(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	upstreamDone := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // silent until the proxy gives up
		close(upstreamDone)
	}))
	defer up.Close()
	rl := New(Config{DefaultURL: up.URL, Clock: clk, IdleTimeout: 5 * time.Minute})
	call, err := rl.Send(context.Background(), httptest.NewRequest(http.MethodPost, "/v1/messages", nil), []byte(`{}`), Target{Token: "k"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	firstByte := make(chan struct{})
	done := make(chan Result)
	go func() {
		done <- *rl.Copy(context.Background(), rec, call, Hooks{FirstByte: func() { close(firstByte) }})
	}()
	<-firstByte
	// The fake clock fires due timers inside Advance, so a cancel would
	// have happened by the time it returns.
	clk.Advance(4 * time.Minute)
	if err := call.Resp.Request.Context().Err(); err != nil {
		t.Fatalf("cancelled before the idle timeout: %v", err)
	}
	clk.Advance(time.Minute)
	res := <-done
	<-upstreamDone
	if !res.Idle || !res.Refund || res.ClientGone {
		t.Fatalf("result %+v", res)
	}
	if body := rec.Body.String(); !strings.HasSuffix(body, "\n\n") || !strings.Contains(body, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"") {
		t.Fatalf("stream must end with an error event: %q", body)
	}
}

// A whole answer of known length is sent as soon as it is copied, in one
// write, not when the handler returns after its bookkeeping; one of
// unknown length is left to net/http (a flush would force chunking).
func TestWholeAnswerIsSentWhenCopied(t *testing.T) {
	const answer = `{"type":"message","usage":{"input_tokens":3,"output_tokens":1}}`
	for _, c := range []struct {
		name      string
		length    bool
		wantFlush bool
	}{
		{"known length", true, true},
		{"chunked", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if c.length {
					w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
					_, _ = io.WriteString(w, answer)
					return
				}
				_, _ = io.WriteString(w, answer[:10])
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, answer[10:])
			}))
			defer up.Close()
			rl := New(Config{DefaultURL: up.URL})
			call, err := rl.Send(context.Background(), httptest.NewRequest(http.MethodPost, "/v1/messages", nil), []byte(`{}`), Target{Token: "k"})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			res := rl.Copy(context.Background(), rec, call, Hooks{})
			if rec.Flushed != c.wantFlush || rec.Body.String() != answer || !res.UsageOK {
				t.Fatalf("flushed %v (want %v), body %q, result %+v", rec.Flushed, c.wantFlush, rec.Body.String(), res)
			}
		})
	}
}
