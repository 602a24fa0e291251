package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/admission"
)

// clientBody is a request's body as the client sends it. It bounds the
// time the body may take (BODY_READ_TIMEOUT) and its rate (BODY_MIN_RATE
// after BODY_RATE_GRACE) with the connection's read deadline, and, once
// the key is known, takes room in the process's body budget as the bytes
// arrive (meter), not as Content-Length announces them: a body declaring
// 32 MiB and sending one byte holds one step of room. Deadlines are on
// real time, as the connection's are.
type clientBody struct {
	io.ReadCloser
	rc  *http.ResponseController // nil: no deadlines (none set, or not a network connection)
	lim bodyLimits
	// start is when the request came; rateStart when the handler began
	// reading the body (zero until then): a request that waited for its
	// key's concurrency place before reading has not been slow. Time spent
	// waiting for room in the budget moves both: the wait is the proxy's.
	start, rateStart time.Time
	read             int64
	set              time.Time // the deadline last set
	slow             bool      // the deadline set is the minimum rate's
	lifted           bool
	meter            *bodyMeter // nil until the key is known
}

// bodyLimits are the bounds on a body's arrival.
type bodyLimits struct {
	timeout time.Duration // whole body, from the request's start; 0: none
	rate    int64         // bytes a second, averaged; ≤ 0: none
	grace   time.Duration // before the rate applies
}

// deadline is when the body must have come further than read bytes: the
// earlier of the whole body's timeout and the moment read bytes fall
// below the minimum rate (rateStart + grace + read/rate). slow reports
// that the rate's is the earlier. Zero: no bound.
func (l bodyLimits) deadline(start, rateStart time.Time, read int64) (d time.Time, slow bool) {
	if l.timeout > 0 {
		d = start.Add(l.timeout)
	}
	if l.rate > 0 && !rateStart.IsZero() {
		r := rateStart.Add(l.grace + time.Duration(read*int64(time.Second)/l.rate))
		if d.IsZero() || r.Before(d) {
			d, slow = r, true
		}
	}
	return d, slow
}

// bodyMeter takes the body's room in the budget for its reader.
type bodyMeter struct {
	s    *Server
	ctx  context.Context
	hold *admission.Hold
}

// errNoRoom: the body budget had no room for the next bytes of this body
// within InflightWait, or its key was over its share while another waited.
var errNoRoom = errors.New("no room in the request-body budget")

// errBodySlow: the body arrived slower than BODY_MIN_RATE.
var errBodySlow = errors.New("request body arrived slower than the minimum rate")

// wrapBody puts the request's body behind a clientBody and gives it its
// first deadline (the whole body's timeout: the rate applies from the
// first read).
func (s *Server) wrapBody(c *gin.Context) {
	r := c.Request
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	cb := &clientBody{ReadCloser: r.Body, start: time.Now(),
		lim: bodyLimits{timeout: s.cfg.BodyReadTimeout, rate: s.cfg.BodyMinRate, grace: s.cfg.BodyRateGrace}}
	if cb.lim.timeout > 0 || cb.lim.rate > 0 {
		rc := http.NewResponseController(c.Writer)
		if d, _ := cb.lim.deadline(cb.start, time.Time{}, 0); d.IsZero() || rc.SetReadDeadline(d) == nil {
			cb.rc, cb.set = rc, d // else not a network connection (handler tests)
		}
	}
	r.Body = cb
}

// clientBodyOf finds the request's clientBody, also under an OpenAI
// conversion; nil when the request has no body.
func clientBodyOf(r *http.Request) *clientBody {
	switch b := r.Body.(type) {
	case *clientBody:
		return b
	case *convertingBody:
		cb, _ := b.src.(*clientBody)
		return cb
	}
	return nil
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.rateStart.IsZero() {
		b.rateStart = time.Now()
	}
	if b.meter != nil {
		room := b.meter.hold.Room(b.read)
		if room <= 0 {
			if err := b.grow(); err != nil {
				b.meter = nil // what is left is only drained, never kept
				return 0, err
			}
			room = b.meter.hold.Room(b.read)
		}
		if int64(len(p)) > room {
			p = p[:room]
		}
	}
	if b.rc != nil && !b.lifted {
		if d, slow := b.lim.deadline(b.start, b.rateStart, b.read); !d.Equal(b.set) {
			_ = b.rc.SetReadDeadline(d)
			b.set, b.slow = d, slow
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		if b.rc != nil && !b.lifted {
			// A stream's connection is read only to notice the client
			// leaving from now on: a deadline there would cancel it.
			b.lifted = true
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case b.slow && errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: %w", errBodySlow, err)
	}
	return n, err
}

// grow takes the next step of room: at once when it is free, else
// waiting up to InflightWait on the injectable clock. The wait does not
// count against the client's time.
func (b *clientBody) grow() error {
	m := b.meter
	to := m.hold.Step(b.read)
	if m.hold.TryGrow(to) {
		return nil
	}
	t0 := time.Now()
	wctx, cancel := context.WithCancel(m.ctx)
	defer cancel()
	t := m.s.d.Clock.AfterFunc(m.s.cfg.InflightWait, cancel)
	defer t.Stop()
	err := m.hold.Grow(wctx, to)
	waited := time.Since(t0)
	b.start, b.rateStart = b.start.Add(waited), b.rateStart.Add(waited)
	switch {
	case err == nil:
		return nil
	case m.ctx.Err() != nil:
		return m.ctx.Err()
	default:
		return fmt.Errorf("%w: %w", errNoRoom, err)
	}
}

// meterBody makes the request's body take room in the body budget as its
// bytes arrive, on behalf of the key (fair shares), into hold. A body
// declared over MAX_BODY_BYTES is only drained (413): it holds nothing.
func (s *Server) meterBody(ctx context.Context, r *http.Request, hold *admission.Hold) {
	if cb := clientBodyOf(r); cb != nil && hold != nil {
		cb.meter = &bodyMeter{s: s, ctx: ctx, hold: hold}
	}
}

// bodyMax is the most a request's body may hold in the budget: its
// declared length, or MAX_BODY_BYTES when it declares none.
func (s *Server) bodyMax(r *http.Request) int64 {
	n := r.ContentLength
	if cb, ok := r.Body.(*convertingBody); ok {
		n = cb.sizeHint // the OpenAI body is what is read from the client
	}
	if n > s.cfg.MaxBodyBytes {
		return 0 // refused unread (413): it holds nothing
	}
	if n < 0 {
		n = s.cfg.MaxBodyBytes
	}
	return n
}

// bodyRead tells net/http that the handler has read the whole body (and
// so lifted its deadline): it hands back net/http's own body, closed. Else
// net/http drains the wrapper when the answer starts, deep in the stack
// that a stream then keeps (DESIGN.md, stacks).
func bodyRead(r *http.Request) {
	if cb, ok := r.Body.(*clientBody); ok {
		r.Body = cb.ReadCloser
	}
	_ = r.Body.Close()
}

// bodyTimedOut reports a body read that hit BodyReadTimeout or the
// minimum rate.
func bodyTimedOut(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
