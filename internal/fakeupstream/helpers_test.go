package fakeupstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	testKey    = "sk-ant-api03-test-key"
	testAccess = "sk-ant-oat01-test-access"
	testRefesh = "sk-ant-ort01-test-refresh"
)

// start runs a server with one API key and one OAuth pair valid for a day.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s := Start(opts)
	t.Cleanup(s.Close)
	s.AddAPIKey(testKey)
	s.AddOAuth(testAccess, testRefesh, s.clock.Now().Add(24*time.Hour))
	return s
}

func keyHeaders(key string) http.Header {
	return http.Header{"X-Api-Key": {key}, "Anthropic-Version": {"2023-06-01"}}
}

func oauthHeaders(access string) http.Header {
	return http.Header{
		"Authorization":     {"Bearer " + access},
		"Anthropic-Version": {"2023-06-01"},
		"Anthropic-Beta":    {"claude-code-20250219, " + oauthBeta},
	}
}

const simpleBody = `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"What is the capital of France? Please answer briefly."}]}`

func streamBody() string {
	return strings.Replace(simpleBody, `"max_tokens":100`, `"max_tokens":100,"stream":true`, 1)
}

func send(t testing.TB, ctx context.Context, s *Server, method, path string, h http.Header, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	return http.DefaultClient.Do(req)
}

// call sends a request and returns status, headers and the whole body.
func call(t *testing.T, s *Server, method, path string, h http.Header, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := send(t, context.Background(), s, method, path, h, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

type apiErrorBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

// checkError asserts Anthropic's error shape and returns it.
func checkError(t *testing.T, status int, h http.Header, body []byte, wantStatus int, wantType, wantMsg string) {
	t.Helper()
	var e apiErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if status != wantStatus || e.Type != "error" || e.Error.Type != wantType || !strings.Contains(e.Error.Message, wantMsg) {
		t.Fatalf("got %d %s, want %d %s containing %q", status, body, wantStatus, wantType, wantMsg)
	}
	if !strings.HasPrefix(e.RequestID, "req_") || h.Get("request-id") != e.RequestID {
		t.Fatalf("request_id %q, header %q", e.RequestID, h.Get("request-id"))
	}
}

type event struct {
	name string
	data map[string]any
}

// readEvent reads one SSE event; io.EOF at a clean end.
func readEvent(r *bufio.Reader) (event, error) {
	var ev event
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" && ev.name == "" {
				return ev, io.EOF
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return ev, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.name != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data); err != nil {
				return ev, err
			}
		}
	}
}

// readEvents reads until the stream ends; err is nil on a clean end.
func readEvents(r *bufio.Reader) ([]event, error) {
	var evs []event
	for {
		ev, err := readEvent(r)
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
	}
}

func names(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.name
	}
	return out
}

// waitFor polls cond for an effect that happens on the server's goroutine
// after the client has moved on; the deadline only guards against hangs.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(bytes.TrimSpace(b))
}
