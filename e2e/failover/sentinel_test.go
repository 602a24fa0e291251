//go:build failover

package failover

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/e2eproc"
)

// sentinelRecovery is the longest a Sentinel promotion may go unnoticed:
// from the moment a sentinel names the new master to the first 200.
const sentinelRecovery = 2 * time.Second

// startSentinel runs a sentinel monitoring master on port. redis-sentinel
// is redis-server in sentinel mode; either binary works.
func startSentinel(t *testing.T, dir string, port, master int) *e2eproc.Proc {
	t.Helper()
	conf := filepath.Join(dir, "sentinel-"+strconv.Itoa(port)+".conf")
	logf := filepath.Join(dir, "sentinel-"+strconv.Itoa(port)+".log")
	body := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor mymaster 127.0.0.1 %d 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 10000
sentinel parallel-syncs mymaster 1
`, port, dir, logf, master)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("redis-sentinel"); err == nil {
		return e2eproc.StartProc(t, port, logf, "redis-sentinel", conf)
	}
	return e2eproc.StartProc(t, port, logf, "redis-server", conf, "--sentinel")
}

// TestSentinelFailover kills the master under a running proxy and asserts
// that the proxy answers 200 again within sentinelRecovery of Sentinel's
// promotion of the replica.
func TestSentinelFailover(t *testing.T) {
	for _, c := range []struct {
		name           string
		settled, empty bool
	}{
		{"settled", true, false},
		// The proxy starts while the sentinels still meet.
		{"fresh", false, false},
		// The promoted replica lost the data (it was resyncing, or was
		// wiped): keys come back from the ledger by the store watchdog.
		{"empty_replica", true, true},
	} {
		t.Run(c.name, func(t *testing.T) { sentinelFailover(t, c.name, c.settled, c.empty) })
	}
}

func sentinelFailover(t *testing.T, name string, settled, empty bool) {
	e2eproc.RequireRedis(t)
	ctx := context.Background()
	dir := t.TempDir()
	pt := e2eproc.NewPorts(t)
	mport, rport := pt.Get(), pt.Get()
	master := e2eproc.StartRedis(t, dir, mport)
	e2eproc.StartRedis(t, dir, rport, "--replicaof", "127.0.0.1", strconv.Itoa(mport), "--replica-read-only", "no")
	sports := []int{pt.Get(), pt.Get(), pt.Get()}
	var addrs []string
	for _, p := range sports {
		startSentinel(t, dir, p, mport)
		addrs = append(addrs, e2eproc.Addr(p))
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: e2eproc.Addr(sports[2])})
	defer sc.Close()
	if settled {
		// Every sentinel knows the replica and the two other sentinels.
		_, ok := e2eproc.WaitFor(30*time.Second, func() bool {
			for _, p := range sports {
				c := redis.NewSentinelClient(&redis.Options{Addr: e2eproc.Addr(p)})
				m, err := c.Master(ctx, "mymaster").Result()
				c.Close()
				if err != nil || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Fatal("sentinels did not settle")
		}
	}
	px := startProxy(t, pt, strings.Join(addrs, ",")+"?master=mymaster")
	// The replica must hold the issued key before the master dies.
	rc := redis.NewClient(&redis.Options{Addr: e2eproc.Addr(rport)})
	defer rc.Close()
	if _, ok := e2eproc.WaitFor(10*time.Second, func() bool {
		info, _ := rc.Info(ctx, "replication").Result()
		mc := redis.NewClient(&redis.Options{Addr: e2eproc.Addr(mport)})
		defer mc.Close()
		minfo, _ := mc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up") && offset(info, "slave_repl_offset") >= offset(minfo, "master_repl_offset")
	}); !ok {
		t.Fatal("replica did not catch up")
	}
	if empty {
		// A writable replica's own writes are not replicated back: this
		// leaves the master intact and the replica empty.
		if err := rc.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	pr := px.probe(3)
	defer pr.close()
	time.Sleep(300 * time.Millisecond)

	killed := time.Now()
	master.Kill()
	promoted, ok := e2eproc.WaitFor(60*time.Second, func() bool {
		a, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		return err == nil && len(a) == 2 && a[1] == strconv.Itoa(rport)
	})
	if !ok {
		t.Fatal("sentinel did not promote the replica within 60 s")
	}
	ok200, ok := pr.firstOKAfter(killed, sentinelRecovery+10*time.Second)
	t.Logf("sentinel (%s): promotion %.2f s after the kill; first 200 %.2f s after the promotion (answers since the kill: %s)",
		name, promoted.Sub(killed).Seconds(), ok200.Sub(promoted).Seconds(), pr.summary(killed))
	if !ok || ok200.Sub(promoted) > sentinelRecovery {
		t.Fatalf("first 200 not within %s of the promotion", sentinelRecovery)
	}
}

// offset reads a numeric field of INFO replication.
func offset(info, field string) int64 {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}
