package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/store"
)

// A Cluster client must not re-send a command or a pipeline whose reply
// came after the read timeout: the node ran it already. The cluster here is
// one node (every slot) behind a proxy that delays replies.
func TestClusterClientRunsEachWriteOnce(t *testing.T) {
	m := miniredis.RunT(t)
	proxy := testenv.NewSlowProxy(t, m.Addr(), 0)
	uo, err := store.ParseURL("127.0.0.1:1,127.0.0.1:2")
	if err != nil || !uo.IsClusterMode {
		t.Fatalf("cluster URL: %v", err)
	}
	store.Tune(uo, store.Options{DialTimeout: 300 * time.Millisecond, ReadTimeout: 400 * time.Millisecond, WriteTimeout: 400 * time.Millisecond})
	co := uo.Cluster()
	co.ClusterSlots = func(context.Context) ([]redis.ClusterSlot, error) {
		return []redis.ClusterSlot{{Start: 0, End: 16383, Nodes: []redis.ClusterNode{{Addr: proxy.Addr()}}}}, nil
	}
	c := redis.NewClusterClient(co)
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	cases := []struct {
		name  string
		write func() error
		key   string
	}{
		{"script", func() error {
			return c.Eval(ctx, `return redis.call('INCR', KEYS[1])`, []string{"n:script"}).Err()
		}, "n:script"},
		{"pipeline", func() error {
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.IncrBy(ctx, "n:pipe", 1)
				return nil
			})
			return err
		}, "n:pipe"},
		{"command", func() error { return c.IncrBy(ctx, "n:cmd", 1).Err() }, "n:cmd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy.SetDelay(0)
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = c.Get(ctx, "warm").Err()
				}()
			}
			wg.Wait()
			proxy.SetDelay(lateReply)
			if err := tc.write(); err == nil {
				t.Fatal("a reply later than the read timeout must be an error")
			}
			// Let every re-send, if any, reach the server.
			proxy.SetDelay(0)
			time.Sleep(50 * time.Millisecond)
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if got, _ := m.Get(tc.key); got != "1" {
				t.Fatalf("%s = %q after one write; want 1 (the cluster client re-sent it)", tc.key, got)
			}
		})
	}
}
