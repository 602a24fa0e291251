package openai

import (
	"encoding/json"
	"io"

	"github.com/claude-route/claude-route/internal/sse"
)

// sseConverter is what the two stream converters (Stream for
// chat.completions, ResponsesStream for the Responses API) share: the
// upstream Messages SSE parser, the bytes one Write produces, and the end
// of the converted stream.
type sseConverter struct {
	w      io.Writer
	parser *sse.Parser
	out    []byte // what one Write produces
	done   bool   // the converted stream ended: nothing follows
}

// init makes c write to w what convert produces from each upstream event
// (typ: the SSE event name, else the data's type; data: the event's
// raw data, which an error event is converted from), until done.
func (c *sseConverter) init(w io.Writer, convert func(typ string, ev *upstreamEvent, data []byte)) {
	c.w = w
	c.parser = sse.NewParser(MaxEvent, nil, func(name, data []byte) {
		if c.done {
			return
		}
		var ev upstreamEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return // not an event of the Messages stream: nothing to convert
		}
		typ := ev.Type
		if len(name) > 0 {
			typ = string(name)
		}
		convert(typ, &ev, data)
	})
}

// Done reports whether the converted stream is complete: its last event
// ([DONE], response.completed or response.incomplete) or an error event
// was written.
func (c *sseConverter) Done() bool { return c.done }

// Write consumes upstream SSE bytes, in any chunking: it converts every
// event those bytes complete and writes the result to the underlying
// writer in one call before it returns, so nothing waits for the end of
// the stream. It reports len(p) unless the underlying writer fails.
func (c *sseConverter) Write(p []byte) (int, error) {
	n := len(p)
	c.out = c.out[:0]
	_, _ = c.parser.Write(p)
	if len(c.out) == 0 {
		return n, nil
	}
	if _, err := c.w.Write(c.out); err != nil {
		return 0, err
	}
	return n, nil
}
