package fakeupstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// openStream starts a streaming request and returns a reader on its body.
func openStream(t *testing.T, ctx context.Context, s *Server, h http.Header) (*http.Response, *bufio.Reader) {
	t.Helper()
	resp, err := send(t, ctx, s, "POST", "/v1/messages", h, streamBody())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	return resp, bufio.NewReader(resp.Body)
}

func TestStreamEventsAndUsage(t *testing.T) {
	for _, chunks := range []int{1, 3, 5} {
		t.Run("chunks="+string(rune('0'+chunks)), func(t *testing.T) {
			s := start(t, Options{Chunks: chunks})
			resp, r := openStream(t, context.Background(), s, oauthHeaders(testAccess))
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				t.Errorf("content-type %q", ct)
			}
			evs, err := readEvents(r)
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			want := []string{"message_start", "content_block_start", "ping"}
			for range chunks {
				want = append(want, "content_block_delta")
			}
			want = append(want, "content_block_stop", "message_delta", "message_stop")
			if got := names(evs); !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
			for _, e := range evs {
				if e.data["type"] != e.name {
					t.Errorf("event %s carries type %v", e.name, e.data["type"])
				}
			}

			ans, _ := Reply([]byte(streamBody()))
			msg := evs[0].data["message"].(map[string]any)
			start := msg["usage"].(map[string]any)
			if msg["model"] != "claude-sonnet-4-5" || !strings.HasPrefix(msg["id"].(string), "msg_") ||
				start["input_tokens"] != float64(ans.Usage.InputTokens) || start["output_tokens"] != float64(1) ||
				start["cache_creation_input_tokens"] != float64(0) || start["cache_read_input_tokens"] != float64(0) {
				t.Errorf("message_start %v", evs[0].data)
			}
			var text strings.Builder
			for _, e := range evs[3 : 3+chunks] {
				d := e.data["delta"].(map[string]any)
				if d["type"] != "text_delta" {
					t.Errorf("delta %v", d)
				}
				text.WriteString(d["text"].(string))
			}
			if text.String() != ans.Text {
				t.Errorf("streamed text %q, want %q", text.String(), ans.Text)
			}
			md := evs[len(evs)-2].data
			// Cumulative: the final count replaces the provisional 1, it is not added.
			if u := md["usage"].(map[string]any); u["output_tokens"] != float64(ans.Usage.OutputTokens) || ans.Usage.OutputTokens != 15 {
				t.Errorf("message_delta usage %v, want output_tokens %d", u, ans.Usage.OutputTokens)
			}
			if d := md["delta"].(map[string]any); d["stop_reason"] != "end_turn" {
				t.Errorf("message_delta %v", md)
			}
			if s.MessageCount() != 1 || s.Cancelled() != 0 {
				t.Errorf("MessageCount %d Cancelled %d", s.MessageCount(), s.Cancelled())
			}
		})
	}
}

func TestStreamFaults(t *testing.T) {
	cases := []struct {
		name    string
		fault   Fault
		events  []string
		wantErr error // reading the body after the events
	}{
		{
			name:    "drop after 2 events",
			fault:   Fault{DropAfterEvents: 2},
			events:  []string{"message_start", "content_block_start"},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "drop after every event still has no clean end",
			fault:   Fault{DropAfterEvents: 11},
			events:  []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:   "error event after 3",
			fault:  Fault{ErrorEventAfter: 3},
			events: []string{"message_start", "content_block_start", "ping", "error"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, Options{})
			s.InjectFault(testKey, tc.fault)
			_, r := openStream(t, context.Background(), s, keyHeaders(testKey))
			evs, err := readEvents(r)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("read error %v, want %v", err, tc.wantErr)
			}
			if got := names(evs); !slices.Equal(got, tc.events) {
				t.Fatalf("events %v, want %v", got, tc.events)
			}
			if last := evs[len(evs)-1]; last.name == "error" {
				if e := last.data["error"].(map[string]any); e["type"] != "overloaded_error" {
					t.Errorf("error event %v", last.data)
				}
			}
			// The fault was used up: the next stream is whole.
			_, r = openStream(t, context.Background(), s, keyHeaders(testKey))
			if evs, err := readEvents(r); err != nil || names(evs)[len(evs)-1] != "message_stop" {
				t.Errorf("second stream: %v %v", names(evs), err)
			}
		})
	}
}

func TestDropNonStream(t *testing.T) {
	s := start(t, Options{})
	s.InjectFault("", Fault{DropAfterEvents: 1})
	resp, err := send(t, context.Background(), s, "POST", "/v1/messages", keyHeaders(testKey), simpleBody)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a broken connection", resp.StatusCode)
	}
}

func TestHoldReleasesAfterFirstEvent(t *testing.T) {
	s := start(t, Options{})
	hold := make(chan struct{})
	s.InjectFault(testAccess, Fault{Hold: hold})
	_, r := openStream(t, context.Background(), s, oauthHeaders(testAccess))

	// message_start must arrive while the stream is still held.
	ev, err := readEvent(r)
	if err != nil || ev.name != "message_start" {
		t.Fatalf("first event %v %v", ev.name, err)
	}
	if s.InFlight() != 1 {
		t.Fatalf("InFlight %d while held", s.InFlight())
	}
	close(hold)
	evs, err := readEvents(r)
	if err != nil || len(evs) != 10 || evs[len(evs)-1].name != "message_stop" {
		t.Fatalf("after release: %v %v", names(evs), err)
	}
	waitIdle(t, s)
	if s.Cancelled() != 0 {
		t.Errorf("Cancelled %d", s.Cancelled())
	}
}

func TestClientCancelIsCounted(t *testing.T) {
	cases := []struct {
		name  string
		fault Fault
		opts  Options
	}{
		{"during hold", Fault{Hold: make(chan struct{})}, Options{}},
		{"between slow chunks", Fault{}, Options{ChunkDelay: time.Hour}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, tc.opts)
			s.InjectFault("", tc.fault)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, r := openStream(t, ctx, s, keyHeaders(testKey))
			if ev, err := readEvent(r); err != nil || ev.name != "message_start" {
				t.Fatalf("first event %v %v", ev.name, err)
			}
			cancel()
			waitIdle(t, s)
			if s.Cancelled() != 1 || s.MessageCount() != 1 {
				t.Errorf("Cancelled %d MessageCount %d, want 1 1", s.Cancelled(), s.MessageCount())
			}
		})
	}
}

func TestHeaderDelay(t *testing.T) {
	t.Run("served after the delay with fault headers", func(t *testing.T) {
		s := start(t, Options{})
		s.InjectFault("", Fault{HeaderDelay: 10 * time.Millisecond, Headers: map[string]string{
			"anthropic-ratelimit-unified-status": "allowed_warning"}})
		status, h, _ := call(t, s, "POST", "/v1/messages", oauthHeaders(testAccess), simpleBody)
		if status != 200 || h.Get("anthropic-ratelimit-unified-status") != "allowed_warning" {
			t.Errorf("status %d unified %q", status, h.Get("anthropic-ratelimit-unified-status"))
		}
	})
	t.Run("client cancels while waiting", func(t *testing.T) {
		s := start(t, Options{})
		s.InjectFault("", Fault{HeaderDelay: time.Hour, Status: 529})
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			resp, err := send(t, ctx, s, "POST", "/v1/messages", keyHeaders(testKey), simpleBody)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		waitFor(t, "the request to arrive", func() bool { return s.InFlight() == 1 })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("client error %v, want context.Canceled", err)
		}
		waitIdle(t, s)
		if s.Cancelled() != 1 || s.MessageCount() != 0 {
			t.Errorf("Cancelled %d MessageCount %d, want 1 0", s.Cancelled(), s.MessageCount())
		}
	})
}

func TestCloseUnblocksHeldStream(t *testing.T) {
	s := Start(Options{})
	s.AddAPIKey(testKey)
	s.InjectFault("", Fault{Hold: make(chan struct{})}) // never released
	_, r := openStream(t, context.Background(), s, keyHeaders(testKey))
	if ev, err := readEvent(r); err != nil || ev.name != "message_start" {
		t.Fatalf("first event %v %v", ev.name, err)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second): // a hang guard, not a timing target
		t.Fatal("Close blocked on a held stream")
	}
	if _, err := readEvents(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("client saw %v, want an unexpected EOF (not a clean end)", err)
	}
	if s.Cancelled() != 0 {
		t.Errorf("closing the server counted as a client cancel")
	}
	s.Close() // idempotent
}
