package route

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/claude-route/claude-route/relay"
)

// The retry policy as a table: what may be sent again, and where.
func TestRetryPolicy(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	timeout := &url.Error{Op: "Post", URL: "u", Err: context.DeadlineExceeded}
	reset := &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}
	answered := func(st int) relay.Attempt {
		return relay.Attempt{Kind: relay.Overflow, Status: st, Call: &relay.Call{Resp: &http.Response{StatusCode: st}}}
	}
	for _, c := range []struct {
		name              string
		att               relay.Attempt
		base, over, again bool
	}{
		{"connection refused", relay.Judge(context.Background(), nil, refused, time.Now()), true, true, false},
		{"header timeout", relay.Judge(context.Background(), nil, timeout, time.Now()), false, false, false},
		{"connection reset after sending", relay.Judge(context.Background(), nil, reset, time.Now()), false, false, false},
		{"rejected 429", answered(http.StatusTooManyRequests), false, true, false},
		{"529", answered(529), false, true, false},
		{"500", answered(http.StatusInternalServerError), false, true, false},
		{"expired token", relay.Attempt{Kind: relay.Expired}, false, false, true},
		{"dead credential", relay.Attempt{Kind: relay.Dead}, false, false, true},
		{"answer", relay.Attempt{Kind: relay.Answer, Status: 200}, false, false, false},
	} {
		if got := nextBaseURL(c.att.Err); got != c.base {
			t.Errorf("%s: next base URL %v, want %v", c.name, got, c.base)
		}
		if got := mayOverflow(c.att); got != c.over {
			t.Errorf("%s: overflow %v, want %v", c.name, got, c.over)
		}
		if got := mayRetryCredential(c.att); got != c.again {
			t.Errorf("%s: credential retry %v, want %v", c.name, got, c.again)
		}
	}
	if nextBaseURL(nil) || !errors.Is(refused, syscall.ECONNREFUSED) {
		t.Fatal("no error, no retry")
	}
}
