package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// replyHold holds the reply of the next spares run once armed: the run has
// landed in Redis, its answer has not reached the Limiter yet.
type replyHold struct {
	sha     string
	mu      sync.Mutex
	armed   bool
	reached chan struct{}
	release chan struct{}
}

func (h *replyHold) arm() {
	h.mu.Lock()
	h.armed, h.reached, h.release = true, make(chan struct{}), make(chan struct{})
	h.mu.Unlock()
}

func (h *replyHold) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *replyHold) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		args := cmd.Args()
		if len(args) < 2 || (cmd.Name() != "evalsha" && cmd.Name() != "eval") ||
			(fmt.Sprint(args[1]) != h.sha && fmt.Sprint(args[1]) != spareScript) {
			return err
		}
		h.mu.Lock()
		armed, reached, release := h.armed, h.reached, h.release
		h.armed = false
		h.mu.Unlock()
		if armed {
			close(reached)
			<-release
		}
		return err
	}
}
func (h *replyHold) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A view (Peek) counts each request once, and a refunded one not at all,
// also while the spare it used is being rescored: the run has turned it
// into an admission in Redis (or the refund has removed it) but its answer
// is still on its way. The usage page showed one request too many then.
func TestPeekWhileASpareIsRescored(t *testing.T) {
	for _, refund := range []bool{false, true} {
		t.Run(fmt.Sprintf("refund=%v", refund), func(t *testing.T) {
			onRunningLimiter(t, func(t *testing.T, rdb redis.UniversalClient, l *Limiter) {
				r := req(fmt.Sprintf("peek-rescore-%v", refund), "sonnet", 100)
				admitMerged(t, l, r)
				admitMerged(t, l, r)
				settled(t, l, r, 1) // 2 admissions and a spare
				h := &replyHold{sha: l.SpareHash()}
				rdb.AddHook(h)
				h.arm()
				res := admitMerged(t, l, r) // on the spare; its rescoring starts
				if !res.spare {
					t.Fatalf("not on a spare: %+v", res)
				}
				<-h.reached
				want := 3
				if refund {
					if err := l.Refund(context.Background(), *res); err != nil {
						t.Fatal(err)
					}
					want = 2
				}
				got, err := l.Peek(context.Background(), r)
				close(h.release)
				if err != nil || got.Count != want || got.Remaining != 100-want {
					t.Fatalf("peek during the rescoring: %+v %v, want count %d", got, err, want)
				}
				settled(t, l, r, -1)
				if got, err := l.Peek(context.Background(), r); err != nil || got.Count != want {
					t.Fatalf("peek after the rescoring: %+v %v, want count %d", got, err, want)
				}
			})
		})
	}
}
