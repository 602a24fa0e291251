package server

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/keys"
)

// keyIDOf is the admin API's non-secret id of a client key.
func keyIDOf(key string) string { return keys.ID(keys.Hash(key)) }

// rtCounter is a go-redis hook that records every round trip: one per
// command, one per pipeline.
type rtCounter struct {
	mu    sync.Mutex
	trips [][]string
	// spareSHA names the quota spares' background script
	// (ratelimit.Limiter.SpareHash): not on any request's way.
	spareSHA string
}

func (c *rtCounter) reset() {
	c.mu.Lock()
	c.trips = nil
	c.mu.Unlock()
}

func (c *rtCounter) add(cmds ...redis.Cmder) {
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
		if c.spareSHA != "" && len(args) > 1 && fmt.Sprint(args[1]) == c.spareSHA {
			s = "spare-run"
		}
		names = append(names, s)
	}
	c.mu.Lock()
	c.trips = append(c.trips, names)
	c.mu.Unlock()
}

// beforeUsage counts the round trips that are not the usage record written
// after the answer.
func (c *rtCounter) beforeUsage() int {
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

func (c *rtCounter) names() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]string(nil), c.trips...)
}

func (c *rtCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *rtCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd)
		return next(ctx, cmd)
	}
}

func (c *rtCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
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

// touching counts the round trips with a command on a key that starts with
// prefix; background loops (the store watchdog, flushers) on other keys do
// not count.
func (c *rtCounter) touching(prefix string) int {
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
