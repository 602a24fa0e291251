package usage

import "sync"

// JSONTap collects a non-streaming response body, up to a limit, so that its
// usage can be read once the body has been passed on to the client.
// It is safe for concurrent use.
type JSONTap struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	over bool
}

// NewJSONTap returns a tap that keeps at most max bytes. A body longer than
// that is dropped entirely: its usage is then unknown rather than guessed
// from a prefix.
func NewJSONTap(max int) *JSONTap { return &JSONTap{max: max} }

// Write copies p into the tap. It never fails and keeps no reference to p.
func (t *JSONTap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over {
		return len(p), nil
	}
	if len(p) > t.max-len(t.buf) {
		t.over = true
		t.buf = nil // release what was kept; it can no longer be parsed
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// Usage parses what was collected. ok is false when the body overflowed the
// limit, is incomplete or carries no usage.
func (t *JSONTap) Usage() (Usage, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over {
		return Usage{}, false
	}
	return ParseJSON(t.buf)
}
