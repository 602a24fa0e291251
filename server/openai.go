package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/openai"
	"github.com/claude-route/claude-route/relay"
)

// chatCompletions serves POST /v1/chat/completions.
func (s *Server) chatCompletions(c *gin.Context) { s.viaMessages(c, openai.ConvertRequest) }

// responses serves POST /v1/responses, OpenAI's Responses API (stateless).
func (s *Server) responses(c *gin.Context) { s.viaMessages(c, openai.ConvertResponsesRequest) }

// viaMessages serves an OpenAI-compatible route by wrapping the Messages
// handler, so keys, tier rules, quotas, binding, overflow and usage are
// exactly those of /v1/messages: the body is converted when the Messages
// handler reads it (after authentication, so a stranger's body is still
// never read), and the answer, stream or error it writes is converted back
// on the way out.
func (s *Server) viaMessages(c *gin.Context, convert convertFunc) {
	orig := c.Request
	r := orig.Clone(orig.Context())
	body := &convertingBody{src: orig.Body, w: c.Writer, limit: s.cfg.MaxBodyBytes, sizeHint: orig.ContentLength,
		convert: convert, header: r.Header}
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = "/v1/messages", "", ""
	r.Body = body
	// The converted body's length is known only once it is converted.
	r.ContentLength = -1
	// OpenAI clients send no anthropic-version; the Messages API needs one.
	if r.Header.Get("Anthropic-Version") == "" {
		r.Header.Set("Anthropic-Version", "2023-06-01")
	}
	w := &openaiWriter{ResponseWriter: c.Writer, body: body, now: s.d.Clock.Now}
	c.Request, c.Writer = r, w
	defer func() { c.Request, c.Writer = orig, w.ResponseWriter }()
	s.messages(c)
	w.finish()
}

// convertFunc converts an OpenAI-compatible request body.
type convertFunc func([]byte, openai.RequestOptions) (openai.Request, *openai.Error)

// convertingBody converts the OpenAI request on its first read.
type convertingBody struct {
	src     io.ReadCloser
	w       http.ResponseWriter
	limit   int64
	convert convertFunc
	// header is the converted request's: a body that needs a beta (JSON
	// answers through structured outputs) adds it there before the request
	// is sent.
	header http.Header
	// sizeHint is the OpenAI body's declared length (-1 unknown): what the
	// in-flight byte budget holds for it.
	sizeHint int64
	conv     *bytes.Reader
	req      openai.Request
	err      *openai.Error // the conversion's refusal, answered as is
	rerr     error
}

func (b *convertingBody) Read(p []byte) (int, error) {
	if b.conv == nil && b.rerr == nil {
		raw, err := io.ReadAll(http.MaxBytesReader(b.w, b.src, b.limit))
		if err != nil {
			b.rerr = err // the Messages handler answers it (413 or 400)
			return 0, err
		}
		req, cerr := b.convert(raw, openai.RequestOptions{})
		if cerr != nil {
			b.err, b.rerr = cerr, cerr
			return 0, cerr
		}
		if req.Beta != "" {
			relay.MergeBeta(b.header, req.Beta)
		}
		b.req, b.conv = req, bytes.NewReader(req.Body)
	}
	if b.rerr != nil {
		return 0, b.rerr
	}
	return b.conv.Read(p)
}

func (b *convertingBody) Close() error { return b.src.Close() }

// openaiWriter converts what the Messages handler writes: an SSE stream
// chunk by chunk as it is flushed, a JSON answer or error once complete.
type openaiWriter struct {
	gin.ResponseWriter
	body   *convertingBody
	now    func() time.Time
	status int
	mode   int // 0 nothing yet, modeStream, modeBuffer, modePass
	stream openai.Converter
	buf    bytes.Buffer
}

const (
	modeStream = iota + 1
	modeBuffer
	modePass
)

// maxAnswer bounds a buffered non-streamed answer or error.
const maxAnswer = 64 << 20

func (w *openaiWriter) WriteHeader(status int) {
	if w.mode != 0 {
		return
	}
	w.status = status
	h := w.ResponseWriter.Header()
	if id := h.Get("Request-Id"); id != "" && h.Get("X-Request-Id") == "" {
		h.Set("X-Request-Id", id)
	}
	ct := h.Get("Content-Type")
	switch {
	case status < 400 && strings.HasPrefix(ct, "text/event-stream"):
		w.mode = modeStream
		h.Del("Content-Length")
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		w.stream = w.body.req.Converter(w.ResponseWriter, w.now())
		w.ResponseWriter.WriteHeader(status)
	case status >= 400 || strings.HasPrefix(ct, "application/json"):
		w.mode = modeBuffer // the status is sent with the converted body
	default:
		w.mode = modePass
		w.ResponseWriter.WriteHeader(status)
	}
}

func (w *openaiWriter) WriteHeaderNow() {}

func (w *openaiWriter) Write(p []byte) (int, error) {
	if w.mode == 0 {
		w.WriteHeader(http.StatusOK)
	}
	switch w.mode {
	case modeStream:
		n, err := w.stream.Write(p)
		if err == nil {
			w.ResponseWriter.Flush()
		}
		return n, err
	case modeBuffer:
		if w.buf.Len()+len(p) > maxAnswer {
			return 0, errors.New("answer too large to convert")
		}
		return w.buf.Write(p)
	default:
		return w.ResponseWriter.Write(p)
	}
}

func (w *openaiWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

// Flush passes a stream's flushes on; a buffered answer has nothing to
// flush until it is complete.
func (w *openaiWriter) Flush() {
	if w.mode == modeStream || w.mode == modePass {
		w.ResponseWriter.Flush()
	}
}

func (w *openaiWriter) Written() bool { return w.mode != 0 }

func (w *openaiWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// finish converts and sends a buffered answer or error.
func (w *openaiWriter) finish() {
	if w.mode != modeBuffer {
		return
	}
	h := w.ResponseWriter.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	status, out := w.status, []byte(nil)
	if status >= 400 {
		e := openai.FromAnthropic(status, w.buf.Bytes())
		if w.body.err != nil && status == http.StatusBadRequest {
			e = w.body.err // the conversion's own refusal names the parameter
		}
		out = e.JSON()
	} else {
		var err error
		if out, err = w.body.req.Answer(w.buf.Bytes(), w.now()); err != nil {
			status = http.StatusBadGateway
			out = (&openai.Error{Status: status, Type: "api_error", Code: "server_error",
				Message: "The upstream answer could not be converted to the OpenAI format"}).JSON()
		}
	}
	w.ResponseWriter.WriteHeader(status)
	_, _ = w.ResponseWriter.Write(out)
}

// isOpenAIClient: OpenAI clients send Authorization: Bearer and never
// anthropic-version, which every Anthropic SDK and Claude Code send.
func isOpenAIClient(h http.Header) bool {
	return h.Get("Anthropic-Version") == "" && strings.HasPrefix(strings.ToLower(h.Get("Authorization")), "bearer ")
}
