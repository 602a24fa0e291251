// Package sse reads a Server-Sent Events stream fed in chunks of any size.
// It is the one SSE reader of the proxy: the usage tap and the OpenAI stream
// converters both read the upstream's Messages stream through it, so they
// agree on where an event ends whatever the line endings and the chunking.
//
// It follows the SSE line rules
// (https://html.spec.whatwg.org/multipage/server-sent-events.html): LF,
// CRLF or a lone CR ends a line, also when a CRLF is split between two
// chunks; a blank line dispatches the event; a line starting with ':' is a
// comment; one space after the colon is dropped; several data lines are
// joined with LF; an event without data is not dispatched. Unlike a
// browser, it bounds what it holds: a line or an event's data longer than
// the parser's limit is dropped, and the event it belongs to is not
// dispatched, so a misbehaving upstream cannot make it hold unbounded
// memory.
package sse

import "bytes"

// DefaultMaxLine is the limit NewParser uses when given none: 1 MiB, far
// above any Messages event (a content delta is a few hundred bytes).
const DefaultMaxLine = 1 << 20

// Handler receives each complete event. name is the event: field ("" when
// the event had none), data its data lines joined with LF. Both are only
// valid during the call: the parser reuses them.
type Handler func(name, data []byte)

// Parser splits a byte stream into events. It is not safe for concurrent
// use; a caller that shares one guards it.
type Parser struct {
	max    int
	skip   func(name []byte) bool
	handle Handler

	// The current line. Only its first bytes are kept until the parser knows
	// whether the line may be skipped; skipLine drops the rest of it.
	line     []byte
	checked  bool // the line's first bytes were examined for an early skip
	skipLine bool
	cr       bool // the last byte seen was a CR: a following LF belongs to it

	// The current event.
	name    []byte
	data    []byte
	hasData bool
	// bad marks an event whose content was lost (an oversize line, or data
	// skipped before a later event: field renamed it): not dispatched.
	bad     bool
	skipped bool // some of this event's data lines were skipped
}

// NewParser returns a parser that calls handle for each event. maxLine
// bounds one line and one event's data (0 means DefaultMaxLine). skip, if
// not nil, is asked about an event's name once its event: line has been
// read: the data lines that follow of an event it answers true for are
// scanned for their end but never copied, and the event is not dispatched
// (the bulk of a stream, such as content deltas, costs a reader that does
// not need them almost nothing).
func NewParser(maxLine int, skip func(name []byte) bool, handle Handler) *Parser {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Parser{max: maxLine, skip: skip, handle: handle}
}

// Write feeds p to the parser, calling the handler for every event p
// completes before it returns. It never fails and keeps no reference to p:
// at most the current partial line (bounded by the limit) is copied.
func (p *Parser) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if p.cr {
			p.cr = false
			if b[0] == '\n' {
				b = b[1:]
				continue
			}
		}
		i := indexEOL(b)
		if i < 0 {
			p.appendPartial(b)
			break
		}
		p.appendPartial(b[:i])
		p.cr = b[i] == '\r'
		b = b[i+1:]
		p.endLine()
	}
	return n, nil
}

// indexEOL returns the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	end := b
	if i >= 0 {
		end = b[:i]
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

func (p *Parser) appendPartial(b []byte) {
	if p.skipLine || len(b) == 0 {
		return
	}
	if !p.checked {
		n := min(checkLen-len(p.line), len(b))
		p.line = append(p.line, b[:n]...)
		b = b[n:]
		if p.line[0] == ':' {
			// A comment, whatever its length: never copied.
			p.skipLine = true
			p.line = p.line[:0]
			return
		}
		if len(p.line) < checkLen {
			return
		}
		p.checked = true
		if p.skip != nil && string(p.line) == dataPrefix && len(p.name) > 0 && p.skip(p.name) {
			// The event is known and of no interest: drop its data
			// without copying it.
			p.skipLine, p.skipped = true, true
			p.line = p.line[:0]
			return
		}
	}
	if len(b) > p.max-len(p.line) {
		p.skipLine, p.bad = true, true
		p.line = p.line[:0]
		return
	}
	p.line = append(p.line, b...)
}

func (p *Parser) endLine() {
	line := p.line
	skipped := p.skipLine
	p.line, p.checked, p.skipLine = p.line[:0], false, false
	if skipped {
		return
	}
	if len(line) == 0 {
		p.dispatch()
		return
	}
	if line[0] == ':' {
		return // a comment
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
		if p.skipped && (p.skip == nil || !p.skip(value)) {
			p.bad = true // data of a wanted event was dropped
		}
		p.name = append(p.name[:0], value...)
	case "data":
		if p.bad {
			return
		}
		if len(p.data)+len(value)+1 > p.max {
			p.bad = true
			p.data = nil
			return
		}
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
		p.hasData = true
	}
	// id, retry and unknown fields do not matter to a reader of Messages
	// streams.
}

// largeBuf is the capacity above which a buffer is dropped after use, so
// one large event does not keep its memory for the whole stream.
const largeBuf = 64 << 10

func (p *Parser) dispatch() {
	name, data, hasData, bad, skipped := p.name, p.data, p.hasData, p.bad, p.skipped
	p.hasData, p.bad, p.skipped = false, false, false
	if hasData && !bad && !skipped {
		p.handle(name, data)
	}
	p.name, p.data = p.name[:0], p.data[:0]
	if cap(p.data) > largeBuf {
		p.data = nil
	}
	if cap(p.line) > largeBuf {
		p.line = nil
	}
}

// Held is the capacity of the buffers the parser keeps between writes: at
// most about one line and one event's data, each within the limit.
func (p *Parser) Held() int { return cap(p.line) + cap(p.data) + cap(p.name) }
