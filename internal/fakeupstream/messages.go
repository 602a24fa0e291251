package fakeupstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// handleMessages serves POST /v1/messages.
func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request, body []byte) {
	auth, aerr := s.authenticate(r.Header)
	if aerr != nil {
		writeError(w, aerr.status, aerr.typ, aerr.message)
		return
	}
	if err := checkBetas(r.Header, body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	ans, err := Reply(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	f, _ := s.takeFault(r.URL.Path, auth.credential)
	if !s.prelude(w, r, auth, f) {
		return
	}
	if !ans.Stream {
		if f.DropAfterEvents > 0 {
			s.abort(w)
			return
		}
		if err := s.hold(r.Context(), f.Hold); err != nil {
			s.stop(w, err)
			return
		}
		s.countMessage()
		writeJSON(w, http.StatusOK, messageJSON(newID("msg_"), ans))
		return
	}
	s.stream(w, r.Context(), ans, f)
}

// prelude does what every authenticated endpoint does before its answer:
// rate-limit headers, the fault's headers and header delay, and a fault's
// error status. It reports whether the handler should go on.
func (s *Server) prelude(w http.ResponseWriter, r *http.Request, auth authInfo, f Fault) bool {
	s.rateLimitHeaders(w.Header(), auth.oauth)
	s.utilizationHeaders(w.Header(), auth)
	for k, v := range f.Headers {
		w.Header().Set(k, v)
	}
	if err := s.sleep(r.Context(), f.HeaderDelay); err != nil {
		s.stop(w, err)
		return false
	}
	if f.Status != 0 {
		typ, msg := f.ErrorType, f.Message
		if typ == "" {
			typ = defaultErrorType(f.Status)
		}
		if msg == "" {
			msg = defaultErrorMessage(f.Status)
		}
		if f.Status >= 500 || f.Status == http.StatusTooManyRequests {
			if w.Header().Get("x-should-retry") == "" {
				w.Header().Set("x-should-retry", "true")
			}
		}
		writeError(w, f.Status, typ, msg)
		return false
	}
	return true
}

// stop ends a response interrupted by a wait: a vanished client is counted,
// a closing server cuts the connection so nobody mistakes it for an answer.
func (s *Server) stop(w http.ResponseWriter, err error) {
	if errors.Is(err, errClientGone) {
		s.noteCancelled()
		return
	}
	s.abort(w)
}

// abort closes the connection without finishing the response: the client
// sees an unexpected EOF, as when a real upstream connection breaks. It
// does not flush: stream events are flushed as they are written, and a
// response whose headers were never sent must stay unsent.
func (s *Server) abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 or a writer that cannot hijack: the server's own way to
		// abort a response mid-way.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

func (s *Server) countMessage() {
	s.mu.Lock()
	s.messages++
	s.mu.Unlock()
}

type sseEvent struct {
	name string
	data any
}

// streamEvents is the exact event sequence of a one-text-block answer.
func streamEvents(id string, ans Answer, chunks int) []sseEvent {
	start := Usage{
		InputTokens:              ans.Usage.InputTokens,
		CacheCreationInputTokens: ans.Usage.CacheCreationInputTokens,
		CacheReadInputTokens:     ans.Usage.CacheReadInputTokens,
		CacheCreation:            ans.Usage.CacheCreation,
		OutputTokens:             1, // provisional, as the API sends it
	}
	evs := []sseEvent{
		{"message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": ans.Model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": start,
		}}},
	}
	evs = append(evs, thinkingEvents(ans)...)
	ti := textIndex(ans)
	evs = append(evs, sseEvent{"content_block_start", map[string]any{"type": "content_block_start", "index": ti,
		"content_block": map[string]any{"type": "text", "text": ""}}},
		sseEvent{"ping", map[string]any{"type": "ping"}})
	for _, piece := range splitRunes(ans.Text, chunks) {
		evs = append(evs, sseEvent{"content_block_delta", map[string]any{"type": "content_block_delta", "index": ti,
			"delta": map[string]any{"type": "text_delta", "text": piece}}})
	}
	evs = append(evs, sseEvent{"content_block_stop", map[string]any{"type": "content_block_stop", "index": ti}})
	evs = append(evs, toolEvents(ans)...)
	return append(evs,
		sseEvent{"message_delta", map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": ans.StopReason, "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": ans.Usage.OutputTokens}}},
		sseEvent{"message_stop", map[string]any{"type": "message_stop"}},
	)
}

// stream writes the SSE answer, one flushed event at a time, applying the
// fault's Hold, DropAfterEvents and ErrorEventAfter.
func (s *Server) stream(w http.ResponseWriter, ctx context.Context, ans Answer, f Fault) {
	evs := streamEvents(newID("msg_"), ans, s.opts.Chunks)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	s.countMessage()
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		s.stop(w, s.writeFailure(ctx))
		return
	}
	// i counts events already sent; the loop runs once past the last event
	// so a fault "after all events" still fires.
	for i := 0; i <= len(evs); i++ {
		if f.DropAfterEvents > 0 && i == f.DropAfterEvents {
			s.abort(w)
			return
		}
		if f.ErrorEventAfter > 0 && i == f.ErrorEventAfter {
			_ = writeEvent(w, rc, "error", map[string]any{"type": "error",
				"error": map[string]string{"type": "overloaded_error", "message": "Overloaded"}})
			return
		}
		if i == len(evs) {
			return
		}
		if d := s.opts.ChunkDelay; i > 0 || s.opts.FirstDelay > 0 {
			if i == 0 {
				d = s.opts.FirstDelay
			}
			if err := s.sleep(ctx, d); err != nil {
				s.stop(w, err)
				return
			}
		}
		if err := writeEvent(w, rc, evs[i].name, evs[i].data); err != nil {
			s.stop(w, s.writeFailure(ctx))
			return
		}
		if i == 0 {
			if err := s.hold(ctx, f.Hold); err != nil {
				s.stop(w, err)
				return
			}
		}
	}
}

// writeFailure classifies a failed write: the connection is gone, either
// because the server closes or because the client left.
func (s *Server) writeFailure(ctx context.Context) error {
	if err := s.alive(ctx); err != nil {
		return err
	}
	return errClientGone
}

func writeEvent(w http.ResponseWriter, rc *http.ResponseController, name string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", name, err)
	}
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		return fmt.Errorf("write %s event: %w", name, err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("flush %s event: %w", name, err)
	}
	return nil
}

func messageJSON(id string, ans Answer) map[string]any {
	return map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": ans.Model,
		"content":     contentJSON(ans),
		"stop_reason": ans.StopReason, "stop_sequence": nil, "usage": ans.Usage,
	}
}

// rateLimitHeaders sets the headers the API sends on authenticated
// answers: per-minute limits for API keys, the unified (subscription)
// headers for OAuth. Injected fault headers override them.
func (s *Server) rateLimitHeaders(h http.Header, oauth bool) {
	now := s.clock.Now()
	if oauth {
		reset5h := strconv.FormatInt(now.Add(5*time.Hour).Unix(), 10)
		reset7d := strconv.FormatInt(now.Add(7*24*time.Hour).Unix(), 10)
		h.Set("anthropic-ratelimit-unified-status", "allowed")
		h.Set("anthropic-ratelimit-unified-reset", reset5h)
		h.Set("anthropic-ratelimit-unified-representative-claim", "five_hour")
		h.Set("anthropic-ratelimit-unified-fallback-percentage", "0.5")
		h.Set("anthropic-ratelimit-unified-5h-status", "allowed")
		h.Set("anthropic-ratelimit-unified-5h-utilization", "0.02")
		h.Set("anthropic-ratelimit-unified-5h-reset", reset5h)
		h.Set("anthropic-ratelimit-unified-7d-status", "allowed")
		h.Set("anthropic-ratelimit-unified-7d-utilization", "0.01")
		h.Set("anthropic-ratelimit-unified-7d-reset", reset7d)
		return
	}
	reset := now.Add(time.Minute).UTC().Truncate(time.Second).Format(time.RFC3339)
	for _, kind := range []struct{ name, limit string }{
		{"requests", "4000"}, {"tokens", "2000000"}, {"input-tokens", "2000000"}, {"output-tokens", "400000"},
	} {
		limit, _ := strconv.Atoi(kind.limit)
		h.Set("anthropic-ratelimit-"+kind.name+"-limit", kind.limit)
		h.Set("anthropic-ratelimit-"+kind.name+"-remaining", strconv.Itoa(limit-1))
		h.Set("anthropic-ratelimit-"+kind.name+"-reset", reset)
	}
}

// handleCountTokens serves POST /v1/messages/count_tokens.
func (s *Server) handleCountTokens(w http.ResponseWriter, r *http.Request, body []byte) {
	auth, aerr := s.authenticate(r.Header)
	if aerr != nil {
		writeError(w, aerr.status, aerr.typ, aerr.message)
		return
	}
	req, err := parseMessages(body, false)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	f, _ := s.takeFault(r.URL.Path, auth.credential)
	if !s.prelude(w, r, auth, f) {
		return
	}
	if err := s.hold(r.Context(), f.Hold); err != nil {
		s.stop(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"input_tokens": inputTokens(req.rawMessages)})
}

// Model is one entry of GET /v1/models.
type Model struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

// Models is the list the fake serves, newest first.
func Models() []Model {
	m := func(id, name, created string) Model {
		return Model{Type: "model", ID: id, DisplayName: name, CreatedAt: created + "T00:00:00Z"}
	}
	return []Model{
		m("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15"),
		m("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29"),
		m("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05"),
		m("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22"),
		m("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22"),
		m("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24"),
		m("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22"),
	}
}

// handleModels serves GET /v1/models and GET /v1/models/{id}.
func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	auth, aerr := s.authenticate(r.Header)
	if aerr != nil {
		writeError(w, aerr.status, aerr.typ, aerr.message)
		return
	}
	f, _ := s.takeFault(r.URL.Path, auth.credential)
	if !s.prelude(w, r, auth, f) {
		return
	}
	models := Models()
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/models/"); ok {
		for _, m := range models {
			if m.ID == id {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		writeError(w, http.StatusNotFound, "not_found_error", "model: "+id)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"data":     models,
		"has_more": false,
		"first_id": models[0].ID,
		"last_id":  models[len(models)-1].ID,
	})
}
