package relay

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/usage"
)

// bufPool holds the 32 KiB copy buffers of whole answers, ssePool the
// 4 KiB ones of event streams: a busy proxy copies thousands of answers,
// and a buffer each would be that much garbage each time. A stream holds
// its buffer for minutes and its events are small; the transport's reader
// hands them over in at most 4 KiB anyway, so 32 KiB per open stream was
// 28 MiB of idle memory at 1,000 streams.
var (
	bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	ssePool = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}
)

// Hooks let the caller act at the two moments only it understands.
type Hooks struct {
	// Header runs before the status line is written: the caller settles
	// what it can (an error status is refunded before the key's quota
	// headers are set) and adds its own headers.
	Header func(status int, h http.Header)
	// FirstByte runs when the first byte of the body arrives.
	FirstByte func()
}

// Result is the one outcome of a relayed answer.
type Result struct {
	Status int
	SSE    bool
	// SawStop, SawError: what the stream carried.
	SawStop, SawError bool
	// Idle: the idle timeout ended the answer.
	Idle bool
	// ReadErr: the upstream broke (or idled) mid-answer.
	ReadErr error
	// ClientGone: the client left during the answer.
	ClientGone bool
	// Shutdown: the server's grace period ended the answer (Relay.Cut).
	Shutdown bool
	// Usage is the token usage read on the way, when UsageOK.
	Usage   usage.Usage
	UsageOK bool
	// Refund is Refund's decision on these facts.
	Refund bool
}

// Facts are the result as Refund reads it.
func (r Result) Facts() Facts {
	return Facts{Status: r.Status, Transport: r.ReadErr, SSE: r.SSE, SawStop: r.SawStop, SawError: r.SawError,
		ClientGone: r.ClientGone, Shutdown: r.Shutdown}
}

// Copy relays the call's answer to w as it arrives, flushing after every
// read so each SSE event reaches the client at once, and reads the usage
// from the same bytes. An answer that breaks or idles mid-stream ends with
// an SSE `event: error` the SDKs raise. ctx is the client's request.
//
// Copy's own frame is small and its state lives in a copier: a stream
// keeps every frame above the copy loop for its whole life, and the first
// flush (net/http writing the status line) runs deep below it; together
// they fit the request goroutine's first 8 KiB of stack (DESIGN.md, stacks).
func (r *Relay) Copy(ctx context.Context, w http.ResponseWriter, call *Call, hooks Hooks) *Result {
	defer call.Close()
	cp := r.begin(w, call, hooks)
	defer cp.idle.stop()
	cp.pump()
	cp.end(ctx)
	return &cp.res
}

// copier is one answer being copied.
type copier struct {
	r     *Relay
	w     http.ResponseWriter
	rc    *http.ResponseController
	call  *Call
	body  io.Reader
	hooks Hooks
	idle  *idleWatch
	// The usage tap: sse for an event stream, js for a whole answer.
	sse *usage.SSETap
	js  *usage.JSONTap
	res Result
}

// begin writes the status line's headers and sets up the taps.
func (r *Relay) begin(w http.ResponseWriter, call *Call, hooks Hooks) *copier {
	resp := call.Resp
	cp := &copier{r: r, w: w, call: call, body: resp.Body, hooks: hooks, res: Result{Status: resp.StatusCode, SSE: IsSSE(resp.Header)}}
	CopyResponseHeaders(w.Header(), resp.Header, resp.StatusCode)
	if hooks.Header != nil {
		hooks.Header(resp.StatusCode, w.Header())
	}
	w.WriteHeader(resp.StatusCode)
	cp.rc = http.NewResponseController(w)
	if cp.res.SSE {
		cp.sse = usage.NewSSETap()
	} else {
		cp.js = usage.NewJSONTap(4 << 20)
	}
	cp.idle = watchIdle(r.cfg.Clock, r.cfg.IdleTimeout, call.cancel)
	return cp
}

// pump copies until the answer ends, the upstream breaks or the client
// leaves.
func (cp *copier) pump() {
	pool := &bufPool
	if cp.sse != nil {
		pool = &ssePool
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := *bp
	first := true
	for {
		n, err := cp.body.Read(buf)
		if n > 0 {
			cp.idle.touch()
			if first && cp.hooks.FirstByte != nil {
				cp.hooks.FirstByte()
			}
			first = false
			if cp.sse != nil {
				_, _ = cp.sse.Write(buf[:n])
			} else {
				_, _ = cp.js.Write(buf[:n])
			}
			// A stream is flushed per read, so each event reaches the
			// client as it arrives. A non-streamed answer is not: it goes
			// out in one write once whole (end), instead of a chunk per
			// read and a closing chunk.
			var werr error
			if _, werr = cp.w.Write(buf[:n]); werr == nil && cp.sse != nil {
				werr = cp.rc.Flush()
			}
			if werr != nil {
				cp.res.ClientGone = true
				return // the client left: its context cancels the upstream call
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				cp.res.ReadErr = err
			}
			return
		}
	}
}

// end reads the taps into the result and, when a stream broke, tells the
// client in an event: the status line is long gone.
func (cp *copier) end(ctx context.Context) {
	res := &cp.res
	res.Idle = cp.idle.fired()
	if res.Idle {
		res.ReadErr = ErrIdle
	}
	res.Shutdown = errors.Is(context.Cause(cp.call.ctx), ErrShutdown)
	res.ClientGone = res.ClientGone || ctx.Err() != nil
	if cp.sse != nil {
		res.SawStop = cp.sse.Done()
		_, _, res.SawError = cp.sse.Error()
		res.Usage, res.UsageOK = cp.sse.Usage()
	} else {
		res.Usage, res.UsageOK = cp.js.Usage()
	}
	if !res.SSE && res.ReadErr == nil && !res.ClientGone && cp.w.Header().Get("Content-Length") != "" {
		// A whole answer of known length goes out now, still in one write,
		// rather than after the request's bookkeeping (usage, the log line).
		_ = cp.rc.Flush()
	}
	if res.SSE && !res.ClientGone && !res.SawStop && !res.SawError {
		typ, msg := "api_error", "The upstream stream ended early; please retry"
		switch {
		case res.Shutdown:
			typ, msg = "overloaded_error", "The server is shutting down; please retry"
		case res.Idle:
			msg = "The upstream sent nothing for " + cp.r.cfg.IdleTimeout.String() + "; please retry"
		case res.ReadErr != nil:
			msg = "The upstream connection was interrupted; please retry"
		}
		_, _ = cp.w.Write(SSEError(typ, msg))
		_ = cp.rc.Flush()
	}
	res.Refund = Refund(res.Facts())
}

// idleWatch cancels the upstream call when no byte arrived for d, on the
// injectable clock. A read only stores a time; the timer re-arms itself
// for the rest of the quiet period, so a busy stream costs one timer per
// idle period, not one per read.
type idleWatch struct {
	clk    clock.Clock
	d      time.Duration
	cancel context.CancelCauseFunc
	last   atomic.Int64 // Unix ns of the last byte
	done   atomic.Bool

	mu      sync.Mutex
	timer   clock.Timer
	stopped bool
}

func watchIdle(clk clock.Clock, d time.Duration, cancel context.CancelCauseFunc) *idleWatch {
	w := &idleWatch{clk: clk, d: d, cancel: cancel}
	w.touch()
	w.arm(d)
	return w
}

func (w *idleWatch) touch() { w.last.Store(w.clk.Now().UnixNano()) }

func (w *idleWatch) arm(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.timer = w.clk.AfterFunc(d, w.check)
	}
}

func (w *idleWatch) check() {
	quiet := w.clk.Now().Sub(time.Unix(0, w.last.Load()))
	if quiet < w.d {
		w.arm(w.d - quiet)
		return
	}
	w.mu.Lock()
	stopped := w.stopped
	w.mu.Unlock()
	if !stopped {
		w.done.Store(true)
		w.cancel(ErrIdle)
	}
}

func (w *idleWatch) fired() bool { return w.done.Load() }

func (w *idleWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}
