package admission

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/tiers"
)

// loseScriptAnswer lets the next script that runs in the store run, and
// loses its answer: a read timeout, as a slow store gives.
type loseScriptAnswer struct{ armed atomic.Bool }

func (h *loseScriptAnswer) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *loseScriptAnswer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *loseScriptAnswer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		switch cmd.Name() {
		case "eval", "evalsha":
			if err == nil && h.armed.CompareAndSwap(true, false) {
				lost := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
				cmd.SetErr(lost)
				return lost
			}
		}
		return err
	}
}

// ledger records the bindings posted to it.
type ledger struct {
	mu    sync.Mutex
	posts []string
}

func (l *ledger) QueueGet(context.Context, redis.Pipeliner, string) *redis.MapStringStringCmd {
	panic("not used")
}

func (l *ledger) PostBinding(tier, hash, account string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.posts = append(l.posts, tier+"/"+hash+"→"+account)
	return nil
}

func (l *ledger) posted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.posts...)
}

// Issue 27: a bind whose script ran but whose answer was lost leaves the
// binding in the store; the customer gets 503, and the binding must
// still reach the ledger (the durable record a flush is recovered from)
// without waiting for the next sync.
func TestLostBindAnswerReachesTheLedger(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	hook := &loseScriptAnswer{}
	rdb.AddHook(hook)
	log := logrus.New()
	log.SetOutput(&testenv.Buffer{})
	pool := accounts.NewPool(rdb, clock.Real{}, log)
	ctx := context.Background()
	if err := pool.SetTier(ctx, "t1", "trial"); err != nil {
		t.Fatal(err)
	}
	led := &ledger{}
	g := NewGate(GateConfig{Stores: Stores{Pool: pool, Keys: led}, Log: log})
	tier, _ := tiers.Builtin().Get("trial")

	hook.armed.Store(true)
	c := &Caller{Hash: "k1", Tier: tier}
	err := g.bind(ctx, c)
	var rf *Refusal
	if !errors.As(err, &rf) || rf.Kind != StoreDown {
		t.Fatalf("a bind whose answer was lost: %v, want a store refusal", err)
	}
	if acct, err := pool.Bound(ctx, "k1"); err != nil || acct != "t1" {
		t.Fatalf("the script ran: bound to %q (%v)", acct, err)
	}
	deadline := time.Now().Add(time.Second)
	for len(led.posted()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	g.Wait()
	if got := led.posted(); len(got) != 1 || got[0] != "trial/k1→t1" {
		t.Fatalf("ledger posts within 1 s: %q, want the lost binding once", got)
	}

	// A bind that failed before anything ran posts nothing.
	c2 := &Caller{Hash: "k2", Tier: tier}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.bind(cctx, c2); err == nil {
		t.Fatal("a bind with its context ended succeeded")
	}
	g.Wait()
	if got := led.posted(); len(got) != 1 {
		t.Fatalf("ledger posts after a bind that never ran: %q", got)
	}
}
