package usage

import (
	"encoding/json"
	"sync"

	"github.com/claude-route/claude-route/internal/jsonscan"
	"github.com/claude-route/claude-route/internal/sse"
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
// and LF of a CRLF. It reads events through the proxy's one SSE reader
// (internal/sse), so it reads what a client would read.
//
// Data lines of events it does not care about (content_block_delta, the bulk
// of a stream) are scanned for their line end but never copied.
//
// It is safe for concurrent use: the proxy writes from the goroutine that
// copies the stream, and another may read the result.
type SSETap struct {
	mu     sync.Mutex
	parser *sse.Parser

	// Results.
	usage     Usage
	haveUsage bool
	done      bool
	errType   string
	errMsg    string
	haveErr   bool
}

// NewSSETap returns an empty tap.
func NewSSETap() *SSETap {
	t := &SSETap{}
	t.parser = sse.NewParser(MaxLine, unwanted, t.dispatch)
	return t
}

// Write observes p. It never fails and keeps no reference to p: at most the
// current partial line (bounded by MaxLine) is copied.
func (t *SSETap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.parser.Write(p)
}

// unwanted says which named events the tap skips unread.
func unwanted(name []byte) bool {
	switch string(name) {
	case evMessageStart, evMessageDelta, evMessageStop, evError, "message":
		return false
	}
	return true
}

// internEvent avoids an allocation per event for the names the tap reads.
func internEvent(v []byte) string {
	switch string(v) {
	case "":
		return ""
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
// It runs under t.mu (inside Write).
func (t *SSETap) dispatch(name, data []byte) {
	event := internEvent(name)
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
		// Only the usage object is decoded (usageAt). One pass validates
		// the event and finds it: top-level in message_delta, inside the
		// message in message_start.
		want := "usage"
		if event == evMessageStart {
			want = "message"
		}
		raw, ok := jsonscan.ValidField(data, want)
		if !ok {
			return
		}
		if event == evMessageStart {
			raw = jsonscan.Field(raw, "usage")
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
