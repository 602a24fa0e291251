package usage

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/claude-route/claude-route/internal/jsonscan"
)

// MaxLine caps one SSE line and one event's data. A longer line is skipped
// (and the event it belongs to ignored), so a misbehaving upstream cannot make
// the tap hold an unbounded amount of memory.
const MaxLine = 1 << 20

// The event types the tap reads; every other type (ping, content blocks,
// types added to the API later) is passed over without being parsed.
const (
	evMessageStart = "message_start"
	evMessageDelta = "message_delta"
	evMessageStop  = "message_stop"
	evError        = "error"
)

// SSETap observes a Messages event stream chunk by chunk and extracts its
// usage. Chunks may be split anywhere: mid-line, mid-event, between the CR
// and LF of a CRLF. It follows the SSE line rules (LF, CRLF or CR ends a
// line; a blank line dispatches the event; lines starting with ':' are
// comments; a single space after the colon is dropped) so it reads what a
// client would read.
//
// Data lines of events it does not care about (content_block_delta, the bulk
// of a stream) are scanned for their line end but never copied.
//
// It is safe for concurrent use: the proxy writes from the goroutine that
// copies the stream, and another may read the result.
type SSETap struct {
	mu sync.Mutex

	// Current line. Only its first few bytes are kept until the tap knows
	// whether the line matters; skip drops the rest of a line.
	line    []byte
	checked bool // the line's first bytes were examined for an early skip
	skip    bool
	cr      bool // the last byte seen was a CR: a following LF belongs to it

	// Current event.
	event   string
	data    []byte
	hasData bool
	// bad marks an event whose content was lost (an oversize line, or data
	// skipped before a late event: field renamed it): it is not parsed.
	bad     bool
	skipped bool // some of this event's data lines were skipped

	// Results.
	usage     Usage
	haveUsage bool
	done      bool
	errType   string
	errMsg    string
	haveErr   bool
}

// NewSSETap returns an empty tap.
func NewSSETap() *SSETap { return &SSETap{} }

// Write observes p. It never fails and keeps no reference to p: at most the
// current partial line (bounded by MaxLine) is copied.
func (t *SSETap) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(p) > 0 {
		if t.cr {
			t.cr = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}
		i := indexEOL(p)
		if i < 0 {
			t.appendPartial(p)
			break
		}
		t.appendPartial(p[:i])
		t.cr = p[i] == '\r'
		p = p[i+1:]
		t.endLine()
	}
	return n, nil
}

// indexEOL returns the index of the first CR or LF in p, or -1.
func indexEOL(p []byte) int {
	i := bytes.IndexByte(p, '\n')
	end := p
	if i >= 0 {
		end = p[:i]
	}
	// CR-only line endings are legal but rare; look for one only before
	// the first LF so a normal stream is scanned about once.
	if j := bytes.IndexByte(end, '\r'); j >= 0 {
		return j
	}
	return i
}

// dataPrefix is what a data line starts with; checkLen bytes suffice to
// decide whether a line may be skipped without copying it.
const (
	dataPrefix = "data:"
	checkLen   = len(dataPrefix)
)

func (t *SSETap) appendPartial(b []byte) {
	if t.skip || len(b) == 0 {
		return
	}
	if !t.checked {
		n := min(checkLen-len(t.line), len(b))
		t.line = append(t.line, b[:n]...)
		b = b[n:]
		if len(t.line) < checkLen {
			return
		}
		t.checked = true
		if string(t.line) == dataPrefix && t.event != "" && !wanted(t.event) {
			// The event is known and of no interest: drop its data
			// without copying it.
			t.skip = true
			t.skipped = true
			t.line = t.line[:0]
			return
		}
	}
	if len(b) > MaxLine-len(t.line) {
		t.skip = true
		t.bad = true
		t.line = t.line[:0]
		return
	}
	t.line = append(t.line, b...)
}

func wanted(event string) bool {
	switch event {
	case evMessageStart, evMessageDelta, evMessageStop, evError, "message":
		return true
	}
	return false
}

func (t *SSETap) endLine() {
	line := t.line
	skipped := t.skip
	t.line, t.checked, t.skip = t.line[:0], false, false
	if cap(t.line) > 64<<10 {
		t.line = nil // do not keep a large buffer for the whole stream
	}
	if skipped {
		return
	}
	if len(line) == 0 {
		t.dispatch()
		return
	}
	if line[0] == ':' {
		return // comment
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		if t.skipped && wanted(string(value)) {
			t.bad = true
		}
		t.event = internEvent(value)
	case "data":
		if t.bad {
			return
		}
		if len(t.data)+len(value)+1 > MaxLine {
			t.bad = true
			t.data = nil
			return
		}
		if t.hasData {
			t.data = append(t.data, '\n')
		}
		t.data = append(t.data, value...)
		t.hasData = true
	}
	// id, retry and unknown fields do not matter here.
}

// internEvent avoids an allocation per event for the names a stream repeats.
func internEvent(v []byte) string {
	switch string(v) {
	case "content_block_delta":
		return "content_block_delta"
	case "content_block_start":
		return "content_block_start"
	case "content_block_stop":
		return "content_block_stop"
	case "ping":
		return "ping"
	case evMessageStart:
		return evMessageStart
	case evMessageDelta:
		return evMessageDelta
	case evMessageStop:
		return evMessageStop
	case evError:
		return evError
	}
	return string(v)
}

// dispatch handles the event that a blank line completes.
func (t *SSETap) dispatch() {
	event, data, hasData, bad := t.event, t.data, t.hasData, t.bad
	t.event, t.hasData, t.bad, t.skipped = "", false, false, false
	t.data = t.data[:0]
	if cap(t.data) > 64<<10 {
		t.data = nil
	}
	// As in a browser's EventSource, an event without data is not
	// dispatched.
	if !hasData || bad {
		return
	}
	if event == "" || event == "message" {
		// No event: field; Anthropic always sends one, but the type is
		// also inside the JSON.
		var probe struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(data, &probe) != nil {
			return
		}
		event = probe.Type
	}
	switch event {
	case evMessageStart, evMessageDelta:
		// Only the usage object is decoded (usageAt).
		if !jsonscan.Valid(data) {
			return
		}
		raw := jsonscan.Field(data, "usage")
		if event == evMessageStart {
			raw = jsonscan.Field(jsonscan.Field(data, "message"), "usage")
		}
		// Fields absent from this event keep what an earlier one said.
		if w, ok := decodeUsage(raw); ok {
			w.applyTo(&t.usage)
			t.haveUsage = true
		}
	case evMessageStop:
		t.done = true
	case evError:
		if t.haveErr {
			return // the first error explains the failure
		}
		var m struct {
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		// An unparsable error event still means the stream failed.
		_ = json.Unmarshal(data, &m)
		t.errType, t.errMsg, t.haveErr = m.Error.Type, m.Error.Message, true
	}
}

// Usage returns the usage seen so far: ok once a message_start or a
// message_delta carrying usage was read. Before message_delta the output
// count is the provisional one from message_start.
func (t *SSETap) Usage() (Usage, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.usage, t.haveUsage
}

// Done reports whether message_stop was seen, i.e. the stream completed.
func (t *SSETap) Done() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}

// Error returns the first `event: error` seen mid-stream. typ and msg are
// the upstream's error.type and error.message (empty if its data was not
// the usual JSON).
func (t *SSETap) Error() (typ, msg string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.errType, t.errMsg, t.haveErr
}
