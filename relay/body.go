package relay

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
)

// Body is one request's body, sent by one or more upstream calls. Its
// buffer may be recycled only when nothing reads it any more:
// http.RoundTripper may go on reading a request body after RoundTrip
// returns, until it closes it. Body counts its readers and its owner, and
// hands the buffer to free when the last of them lets go. Coding agents
// send the whole conversation with every turn (tens to hundreds of KiB), so
// a body that is not recycled is most of the garbage a request makes.
type Body struct {
	b    []byte
	refs atomic.Int32
	free func([]byte)
}

// NewBody wraps b, held by its owner until Release; free (nil: none) gets
// b back once the owner and every call sending it are done with it.
func NewBody(b []byte, free func([]byte)) *Body {
	body := &Body{b: b, free: free}
	body.refs.Store(1)
	return body
}

// Bytes returns the body's bytes; they are valid until Release.
func (b *Body) Bytes() []byte { return b.b }

// Release drops the owner's hold: no call will be made with the body after
// it. Calls still sending it keep the buffer until their transport closes
// their reader.
func (b *Body) Release() { b.unref() }

func (b *Body) unref() {
	if b.refs.Add(-1) == 0 && b.free != nil {
		buf := b.b
		b.b = nil
		b.free(buf)
	}
}

// reader is one call's hold on the body: the transport closes it when it
// has written the body (or given up), however often it closes it.
// It is nil for an empty body, and for one already recycled (ok false):
// the transport asks again (GetBody) only inside RoundTrip, while the owner
// still holds it, but a reader of freed memory must be impossible.
func (b *Body) reader() (rc io.ReadCloser, ok bool) {
	for {
		n := b.refs.Load()
		if n <= 0 {
			return nil, false
		}
		if b.refs.CompareAndSwap(n, n+1) {
			break
		}
	}
	if len(b.b) == 0 {
		b.unref()
		return nil, true
	}
	return &bodyReader{Reader: bytes.NewReader(b.b), body: b}, true
}

// errBodyGone: a body asked for after it was recycled (never expected).
var errBodyGone = errors.New("relay: request body asked for after it was released")

type bodyReader struct {
	*bytes.Reader
	body   *Body
	closed atomic.Bool
}

func (r *bodyReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.body.unref()
	}
	return nil
}
