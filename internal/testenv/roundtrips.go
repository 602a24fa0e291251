package testenv

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/store"
)

// RedisClient is the client Client returns (go-redis's), named here so a
// test helper can return one without importing the driver.
type RedisClient = redis.UniversalClient

// Client returns a client to the Redis at url (a REDIS_URL), closed when
// the test ends: for a test that looks at what a whole server stored,
// without the server's package knowing the client's type.
func Client(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	o, err := store.ParseURL(url)
	if err != nil {
		t.Fatalf("redis url %s: %v", url, err)
	}
	c := redis.NewUniversalClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// CommandStats reads INFO commandstats: command → calls. The server counts
// the commands a script runs too.
func CommandStats(t testing.TB, c redis.UniversalClient) map[string]int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
	}
	return out
}

// RoundTrips is a go-redis hook (client.AddHook) that records every round
// trip of a claude-route client: one per command, one per pipeline, each
// as its commands' names and first arguments.
type RoundTrips struct {
	// SpareSHA names the quota spares' background script
	// (ratelimit.Limiter.SpareHash): not on any request's way.
	SpareSHA string

	mu    sync.Mutex
	trips [][]string
}

// Reset forgets the round trips recorded so far.
func (c *RoundTrips) Reset() {
	c.mu.Lock()
	c.trips = nil
	c.mu.Unlock()
}

func (c *RoundTrips) add(cmds ...redis.Cmder) {
	var names []string
	for _, cmd := range cmds {
		args := cmd.Args()
		s := cmd.Name()
		if len(args) > 1 {
			s += " " + fmt.Sprint(args[1])
		}
		if isLeaseRelease(args) {
			s = "lease-release"
		}
		if c.SpareSHA != "" && len(args) > 1 && fmt.Sprint(args[1]) == c.SpareSHA {
			s = "spare-run"
		}
		names = append(names, s)
	}
	c.mu.Lock()
	c.trips = append(c.trips, names)
	c.mu.Unlock()
}

// BeforeUsage counts the round trips that are not the usage record written
// after the answer, a lease's release or a spare's run.
func (c *RoundTrips) BeforeUsage() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.trips {
		// Connection set-up (HELLO, SELECT, CLIENT SETINFO) happens once per
		// pooled connection, not per request.
		switch strings.Fields(t[0])[0] {
		case "hello", "select", "client", "auth":
			continue
		}
		// A lease's release runs after the answer, when the request ends.
		if len(t) == 1 && (t[0] == "lease-release" || t[0] == "spare-run") {
			continue
		}
		if !strings.Contains(strings.Join(t, ","), "cr:usage") {
			n++
		}
	}
	return n
}

// Names are the round trips recorded, oldest first.
func (c *RoundTrips) Names() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.trips...)
}

// DialHook is part of redis.Hook; dials are not round trips.
func (c *RoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook records a single command.
func (c *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook records a pipeline as one round trip.
func (c *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.add(cmds...)
		return next(ctx, cmds)
	}
}

// isLeaseRelease recognises the concurrency package's release: one ZREM
// of the lease's id from the key's lease set (cr:cc:{hash}:l).
func isLeaseRelease(args []any) bool {
	if len(args) != 3 || fmt.Sprint(args[0]) != "zrem" {
		return false
	}
	k := fmt.Sprint(args[1])
	return strings.HasPrefix(k, "cr:cc:{") && strings.HasSuffix(k, "}:l")
}

// Touching counts the round trips with a command on a key that starts with
// prefix; background loops (the store watchdog, flushers) on other keys do
// not count.
func (c *RoundTrips) Touching(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, trip := range c.trips {
		for _, name := range trip {
			if _, key, ok := strings.Cut(name, " "); ok && strings.HasPrefix(key, prefix) {
				n++
				break
			}
		}
	}
	return n
}
