package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestTransportFailure(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{errors.New("ERR wrong number of arguments"), true}, // not a reply type: counts
		{context.Canceled, false},
		{fmt.Errorf("wrapped: %w", context.Canceled), false},
		{context.DeadlineExceeded, true},
		{io.EOF, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
	}
	for _, c := range cases {
		if got := transportFailure(c.err); got != c.want {
			t.Errorf("transportFailure(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	// A real server reply is a redis.Error and never triggers a reload.
	var re redis.Error
	if !errors.As(redis.Nil, &re) {
		t.Fatal("redis.Nil is expected to be a redis.Error")
	}
}

// Failures reload the slot map at most once per interval; replies never do.
func TestReloadOnFailureRateLimited(t *testing.T) {
	now := time.Unix(1000, 0)
	n := 0
	h := &reloadOnFailure{reload: func() { n++ }, every: 500 * time.Millisecond, now: func() time.Time { return now }}
	refused := &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	proc := h.ProcessHook(func(context.Context, redis.Cmder) error { return refused })
	pipe := h.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { return refused })
	for i := 0; i < 5; i++ {
		_ = proc(context.Background(), nil)
		_ = pipe(context.Background(), nil)
	}
	if n != 1 {
		t.Fatalf("%d reloads within one interval, want 1", n)
	}
	now = now.Add(500 * time.Millisecond)
	_ = proc(context.Background(), nil)
	if n != 2 {
		t.Fatalf("%d reloads after the interval, want 2", n)
	}
	now = now.Add(time.Second)
	ok := h.ProcessHook(func(context.Context, redis.Cmder) error { return redis.Nil })
	_ = ok(context.Background(), nil)
	if n != 2 {
		t.Fatal("a reply from Redis reloaded the slot map")
	}
}
