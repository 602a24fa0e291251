package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// bodyClasses are the capacities of pooled request-body buffers. Larger
// bodies are rare and get an exact allocation: pooling them would pin
// tens of MiB per idle buffer.
var bodyClasses = [...]int{16 << 10, 64 << 10, 256 << 10, 1 << 20}

// bodyPool recycles the buffers of bodies of unknown length (chunked),
// which grow from a pooled start. A buffer goes back only when no upstream
// call read it: http.Transport may still be reading a request body after
// RoundTrip returns, so a forwarded body is left to the GC.
type bodyPool struct {
	pools [len(bodyClasses)]sync.Pool
}

// get returns a buffer of length 0 and capacity at least n.
func (p *bodyPool) get(n int) []byte {
	for i, c := range bodyClasses {
		if n <= c {
			if b, ok := p.pools[i].Get().(*[]byte); ok {
				return (*b)[:0]
			}
			return make([]byte, 0, c)
		}
	}
	return make([]byte, 0, n)
}

// put recycles b when its capacity is one of the classes.
func (p *bodyPool) put(b []byte) {
	for i, c := range bodyClasses {
		if cap(b) == c {
			b = b[:0]
			p.pools[i].Put(&b)
			return
		}
	}
}

// errBodyTooLarge: the body is over MAX_BODY_BYTES.
var errBodyTooLarge = errors.New("request body too large")

// readSized reads a request body of at most limit bytes. A declared
// Content-Length presizes the buffer (one allocation, or none from the
// pool); one over the limit is drained, not buffered, and refused.
func (p *bodyPool) readSized(w http.ResponseWriter, body io.ReadCloser, contentLength, limit int64) ([]byte, error) {
	r := http.MaxBytesReader(w, body, limit)
	if contentLength > limit {
		// Draining before answering keeps the client's write from failing
		// (golang/go#40747) without holding the bytes.
		_, err := io.Copy(io.Discard, r)
		return nil, tooLarge(err)
	}
	if contentLength > presizeMax {
		// Announced is not sent: grow with what arrives, up to the
		// announced length, so a body declaring 32 MiB and sending a byte
		// does not allocate 32 MiB.
		return readAnnounced(r, contentLength)
	}
	if contentLength >= 0 {
		// Exactly its size, not a pooled class: most bodies go upstream,
		// and a forwarded body cannot be recycled (http.Transport may still
		// read it after RoundTrip returns), so a 2 KiB body taking a 16 KiB
		// class buffer made half of all bytes allocated under load.
		buf := make([]byte, contentLength)
		n, err := io.ReadFull(r, buf)
		if err != nil && !(errors.Is(err, io.EOF) && contentLength == 0) {
			p.put(buf)
			return nil, tooLarge(err)
		}
		return buf[:n], nil
	}
	// Unknown length (chunked): grow as io.ReadAll would, from a pooled start.
	bb := bytes.NewBuffer(p.get(bodyClasses[0]))
	if _, err := bb.ReadFrom(r); err != nil {
		return nil, tooLarge(err)
	}
	return bb.Bytes(), nil
}

// presizeMax is the largest announced length allocated up front.
const presizeMax = 1 << 20

// readAnnounced reads a body announcing n bytes (over presizeMax) into a
// buffer that doubles as the bytes arrive, ending at exactly n.
func readAnnounced(r io.Reader, n int64) ([]byte, error) {
	buf := make([]byte, 0, presizeMax)
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			c := int64(2 * cap(buf))
			if c > n {
				c = n
			}
			buf = append(make([]byte, 0, c), buf...)
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				if int64(len(buf)) == n {
					break
				}
				err = io.ErrUnexpectedEOF
			}
			return nil, tooLarge(err)
		}
	}
	return buf, nil
}

func tooLarge(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || err == nil {
		return fmt.Errorf("%w: %v", errBodyTooLarge, err)
	}
	return err
}

// drain reads and discards what is left of a body (up to limit) before a
// refusal is answered: a client still writing a large body may otherwise
// see its write fail instead of the answer (golang/go#40747). No byte is
// kept.
func drain(w http.ResponseWriter, body io.ReadCloser, limit int64) {
	_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, body, limit))
}
