package ratelimit

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// loseAnswers runs the named commands and then loses their answers, as a
// read timeout after the store did the work would.
type loseAnswers struct {
	names []string
	on    atomic.Bool
}

var errLost = &net.OpError{Op: "read", Err: errors.New("i/o timeout (answer lost)")}

func (h *loseAnswers) lose(cmd redis.Cmder) bool {
	if !h.on.Load() {
		return false
	}
	for _, n := range h.names {
		if strings.EqualFold(cmd.Name(), n) {
			cmd.SetErr(errLost)
			return true
		}
	}
	return false
}

func (h *loseAnswers) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *loseAnswers) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if h.lose(cmd) {
			return errLost
		}
		return err
	}
}

func (h *loseAnswers) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if h.lose(c) {
				err = errLost
			}
		}
		return err
	}
}

// A place whose answer (or refund) was lost goes back by itself: the
// caller only sees the error, and the key does not lose the place for
// the whole window (issue 23: nothing outside this package knows ids).
func TestLostAnswersGiveThePlaceBack(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		lose []string
		// do takes a place with the answer (or the refund) lost; it
		// returns the error the caller saw.
		do func(l *Limiter, rdb redis.UniversalClient, h *loseAnswers, r Request) error
	}{
		{"pipelined admission", []string{"evalsha", "eval"}, func(l *Limiter, rdb redis.UniversalClient, h *loseAnswers, r Request) error {
			h.on.Store(true)
			pipe := rdb.Pipeline()
			p := l.QueueAdmit(ctx, pipe, r)
			_, _ = pipe.Exec(ctx)
			_, err := p.Result(ctx)
			return err
		}},
		{"merged admission", []string{"evalsha", "eval"}, func(l *Limiter, _ redis.UniversalClient, h *loseAnswers, r Request) error {
			h.on.Store(true)
			_, err := l.AdmitMerged(ctx, r)
			return err
		}},
		{"refund", []string{"zrem"}, func(l *Limiter, _ redis.UniversalClient, h *loseAnswers, r Request) error {
			res, err := l.AdmitMerged(ctx, r)
			if err != nil || !res.Allowed {
				t.Fatalf("admission: %+v %v", res, err)
			}
			h.on.Store(true)
			return l.Refund(ctx, *res)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
			h := &loseAnswers{names: c.lose}
			rdb.AddHook(h)
			l := New(rdb)
			r := req("lost", "sonnet", 5)
			if err := c.do(l, rdb, h, r); err == nil {
				t.Fatal("the caller should see the lost answer as an error")
			}
			h.on.Store(false) // the store answers again
			l.Wait()
			if n := rdb.ZCard(ctx, r.Key()).Val(); n != 0 {
				t.Fatalf("%d places still taken after the give-back; want 0", n)
			}
		})
	}
}

// Await waits only when asking again may admit: a window full of other
// replicas' spares (Held), at most twice.
func TestAwait(t *testing.T) {
	l := New(nil)
	ctx := context.Background()
	cases := []struct {
		name  string
		res   Result
		tries int
		want  bool
	}{
		{"admitted", Result{Allowed: true}, 0, false},
		{"full of admissions", Result{RetryAfter: 1}, 0, false},
		{"full of spares", Result{Held: 1}, 0, true},
		{"full of spares, second wait", Result{Held: 1}, 1, true},
		{"full of spares, third wait", Result{Held: 1}, 2, false},
	}
	for _, c := range cases {
		if got := l.Await(ctx, c.res, c.tries); got != c.want {
			t.Errorf("%s: Await %v, want %v", c.name, got, c.want)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if l.Await(done, Result{Held: 1e9}, 0) {
		t.Error("Await should give up when the context ends")
	}
}
