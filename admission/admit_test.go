package admission

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/concurrency"
	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/tiers"
)

// plainBatch sends each queue in a pipeline of its own.
type plainBatch struct{ rdb redis.UniversalClient }

func (b plainBatch) Do(ctx context.Context, queue func(redis.Pipeliner)) error {
	pipe := b.rdb.Pipeline()
	queue(pipe)
	_, _ = pipe.Exec(ctx)
	return nil
}

// bodyFunc is a BodyReader from a function.
type bodyFunc func(ctx context.Context, c *Caller, h *Hold) (string, error)

func (f bodyFunc) ReadBody(ctx context.Context, c *Caller, h *Hold) (string, error) {
	return f(ctx, c, h)
}

// A refused request ends its admission inside Admit: whether the body
// reader refuses, the tier refuses the model, or the reader panics, the
// key's concurrency place and the body's bytes are back when Admit
// returns (or panics on), and the refusal names the key's scope.
func TestAdmitGivesBackWhatARefusalTook(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	leases := concurrency.New(rdb, concurrency.Config{})
	budget := NewBudget(1 << 20)
	g := NewGate(GateConfig{Stores: Stores{Leases: leases, Batch: plainBatch{rdb}}, Bodies: budget, Tiers: tiers.NewLive(tiers.Builtin(), ""), CacheTTL: time.Minute})
	key := "sk-cli-v1-" + strings.Repeat("A", 32)
	hash := keys.Hash(key)
	// The key is known (cached); trial allows sonnet only and limits a
	// key to 2 requests in flight, so its requests take a lease.
	g.keys.Put(hash, g.keys.Begin(), keyEntry{rec: keys.Record{Hash: hash, ID: keys.ID(hash), Tier: "trial", Status: keys.StatusActive}})
	read := func(model string, err error) bodyFunc {
		return func(_ context.Context, c *Caller, h *Hold) (string, error) {
			if !h.TryGrow(1000) || budget.HeldBy(c.Hash) != 1000 {
				t.Fatal("the body's bytes are not held for its key")
			}
			if leases.Held() != 1 {
				t.Fatalf("the body is read with the key's place held: %d leases", leases.Held())
			}
			return model, err
		}
	}
	errTooBig := errors.New("body too large")
	for _, c := range []struct {
		name  string
		body  BodyReader
		kind  Kind
		panic bool
	}{
		{"the body reader refuses", read("", errTooBig), BodyRefused, false},
		{"the tier refuses the model", read("claude-opus-4-1", nil), ModelRefused, false},
		{"the body reader panics", bodyFunc(func(ctx context.Context, c *Caller, h *Hold) (string, error) {
			_, _ = read("", nil)(ctx, c, h)
			panic("reader")
		}), 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); (r != nil) != c.panic {
						if !c.panic {
							panic(r)
						}
						t.Fatalf("panic %v", r)
					}
				}()
				_, err = g.Admit(context.Background(), Request{Key: key, Counted: true, Body: c.body, BodyMax: 1000})
			}()
			if n := leases.Held(); n != 0 {
				t.Fatalf("%d leases still held", n)
			}
			if n := budget.InUse(); n != 0 {
				t.Fatalf("%d body bytes still held", n)
			}
			if c.panic {
				return
			}
			var rf *Refusal
			if !errors.As(err, &rf) || rf.Kind != c.kind || rf.Caller == nil || rf.Caller.Hash != hash {
				t.Fatalf("refusal %#v, want kind %d with the caller", err, c.kind)
			}
			if c.kind == BodyRefused && !errors.Is(err, errTooBig) {
				t.Fatalf("the reader's error is not kept: %v", err)
			}
		})
	}
	g.Wait()
}
