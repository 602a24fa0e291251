package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/store"
)

// lateReply is how late the slow proxy delivers a reply in these tests: well
// past the store's 400 ms read timeout. go-redis sets the read deadline only
// once the write has returned, so a goroutine preempted for more than the
// margin between the two (on the loaded 2-core CI machine, under -race)
// started its deadline late enough to read a 450 ms reply in time, and the
// write "succeeded" (2-3 runs in 40 failed that way).
const lateReply = 2 * time.Second

// A store whose replies arrive after the client's read timeout still runs
// every command it receives. A client that re-sends after the timeout runs
// a write twice: usage double-counted, two quota places, two refresh
// attempts. Each write must reach the server exactly once.
func TestSlowStoreRunsEachWriteOnce(t *testing.T) {
	m := miniredis.RunT(t)
	proxy := testenv.NewSlowProxy(t, m.Addr(), 0)
	s, err := store.Open("redis://"+proxy.Addr(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	cases := []struct {
		name  string
		write func() error
		key   string
	}{
		{"script", func() error {
			return s.Client.Eval(ctx, `return redis.call('INCR', KEYS[1])`, []string{"n:script"}).Err()
		}, "n:script"},
		{"pipeline", func() error {
			_, err := s.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.IncrBy(ctx, "n:pipe", 1)
				return nil
			})
			return err
		}, "n:pipe"},
		{"command", func() error { return s.Client.IncrBy(ctx, "n:cmd", 1).Err() }, "n:cmd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Open a few connections quickly (a timed-out command costs
			// its connection, and a re-send takes an idle one), then slow
			// the replies down.
			proxy.SetDelay(0)
			var wg sync.WaitGroup
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = s.Client.Eval(ctx, `redis.call('PING'); return 1`, nil).Err()
				}()
			}
			wg.Wait()
			if err := s.Client.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			proxy.SetDelay(lateReply)
			if err := c.write(); err == nil {
				t.Fatal("a reply later than the read timeout must be an error")
			}
			// The first send is what the server runs, before the client times out.
			if got, _ := m.Get(c.key); got != "1" {
				t.Fatalf("%s = %q after one write; want 1 (the client re-sent it)", c.key, got)
			}
		})
	}
}

// The embedded store is on a loopback port any local user can reach: a
// client without the process's secret is refused.
func TestEmbeddedStoreRefusesClientsWithoutTheSecret(t *testing.T) {
	s, err := store.Open("", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if err := s.Client.Set(ctx, "cr:acct:x", "token", 0).Err(); err != nil {
		t.Fatalf("the service's own client: %v", err)
	}
	stranger := redis.NewClient(&redis.Options{Addr: s.Embedded.Addr(), MaxRetries: -1})
	defer stranger.Close()
	_, err = stranger.Get(ctx, "cr:acct:x").Result()
	if err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("a client without the password got %v; want NOAUTH", err)
	}
	guess := redis.NewClient(&redis.Options{Addr: s.Embedded.Addr(), Password: "", Username: "default", MaxRetries: -1})
	defer guess.Close()
	if v, err := guess.Get(ctx, "cr:acct:x").Result(); err == nil {
		t.Fatalf("read %q without the password", v)
	}
}

// go-redis's own lines go through the service's logger, so a JSON log
// stays JSON.
func TestRedisLogLinesAreJSON(t *testing.T) {
	var buf testenv.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetFormatter(&logrus.JSONFormatter{})
	store.RouteLogs(log)
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	// A sub-millisecond expiry is one thing go-redis logs about.
	if err := c.Set(context.Background(), "k", "v", time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSpace(buf.String())
	if out == "" {
		t.Fatal("go-redis's line did not reach the service's logger")
	}
	for _, line := range strings.Split(out, "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if v["component"] != "redis" || !strings.Contains(v["msg"].(string), "truncating") {
			t.Fatalf("unexpected line %q", line)
		}
	}
}
