//go:build failover

package failover

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/e2eproc"
)

// restartRecovery is the longest the proxy may take to serve again once a
// restarted single Redis answers.
const restartRecovery = 2 * time.Second

// TestRedisRestart kills a single Redis (SIGKILL), starts it again on the
// same port with its append-only file, and asserts the first 200 within
// restartRecovery of the store answering again.
func TestRedisRestart(t *testing.T) {
	e2eproc.RequireRedis(t)
	ctx := context.Background()
	dir := t.TempDir()
	pt := e2eproc.NewPorts(t)
	port := pt.Get()
	args := []string{"--appendonly", "yes", "--appendfsync", "always"}
	r := e2eproc.StartRedis(t, dir, port, args...)
	px := startProxy(t, pt, "redis://"+e2eproc.Addr(port))
	pr := px.probe(3)
	defer pr.close()
	time.Sleep(300 * time.Millisecond)

	killed := time.Now()
	r.Kill()
	time.Sleep(2 * time.Second) // down long enough for every pool to notice
	e2eproc.StartRedis(t, dir, port, args...)
	c := redis.NewClient(&redis.Options{Addr: e2eproc.Addr(port)})
	defer c.Close()
	up, ok := e2eproc.WaitFor(10*time.Second, func() bool { return c.Ping(ctx).Err() == nil })
	if !ok {
		t.Fatal("redis did not come back")
	}
	ok200, ok := pr.firstOKAfter(up, restartRecovery+10*time.Second)
	t.Logf("single redis: restarted %.2f s after the kill; first 200 %.2f s after it answered (answers since the kill: %s)",
		up.Sub(killed).Seconds(), ok200.Sub(up).Seconds(), pr.summary(killed))
	if !ok || ok200.Sub(up) > restartRecovery {
		t.Fatalf("first 200 not within %s of the restart", restartRecovery)
	}
}
