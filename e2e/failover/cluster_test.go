//go:build failover

package failover

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/e2eproc"
)

// clusterRecovery is the longest a Cluster promotion may go unnoticed.
const clusterRecovery = 5 * time.Second

// TestClusterFailover kills the master that owns the {pool} slot in a
// cluster of 3 masters with a replica each, and asserts that the proxy
// answers 200 again within clusterRecovery of the replica's promotion.
func TestClusterFailover(t *testing.T) {
	e2eproc.RequireRedis(t)
	ctx := context.Background()
	dir := t.TempDir()
	script := filepath.Join(e2eproc.RepoRoot(), "scripts", "redis-cluster")
	cmd := exec.Command("bash", script, "start", dir)
	cmd.Env = append(os.Environ(), "REPLICAS=1", "NODE_TIMEOUT=1000")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("redis-cluster start: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("bash", script, "stop", dir).Run() })
	addrs := strings.TrimSpace(string(out))
	seeds := strings.Split(addrs, ",")

	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds})
	defer cc.Close()
	slot := int(redis.NewClient(&redis.Options{Addr: seeds[0]}).ClusterKeySlot(ctx, "{pool}").Val())
	owner := func(c *redis.Client) (master string, replicas []string) {
		slots, err := c.ClusterSlots(ctx).Result()
		if err != nil {
			return "", nil
		}
		for _, s := range slots {
			if slot >= int(s.Start) && slot <= int(s.End) && len(s.Nodes) > 0 {
				for _, n := range s.Nodes[1:] {
					replicas = append(replicas, n.Addr)
				}
				return s.Nodes[0].Addr, replicas
			}
		}
		return "", nil
	}
	seed := redis.NewClient(&redis.Options{Addr: seeds[0]})
	defer seed.Close()
	var master string
	var replicas []string
	// Wait until the owner's replica is attached and in sync.
	if _, ok := e2eproc.WaitFor(30*time.Second, func() bool {
		master, replicas = owner(seed)
		if master == "" || len(replicas) == 0 {
			return false
		}
		rc := redis.NewClient(&redis.Options{Addr: replicas[0]})
		defer rc.Close()
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	}); !ok {
		t.Fatalf("no synced replica for the {pool} slot %d", slot)
	}

	px := startProxy(t, e2eproc.NewPorts(t), addrs)
	mc := redis.NewClient(&redis.Options{Addr: master})
	defer mc.Close()
	if _, ok := e2eproc.WaitFor(10*time.Second, func() bool {
		rc := redis.NewClient(&redis.Options{Addr: replicas[0]})
		defer rc.Close()
		info, _ := rc.Info(ctx, "replication").Result()
		minfo, _ := mc.Info(ctx, "replication").Result()
		return offset(info, "slave_repl_offset") >= offset(minfo, "master_repl_offset")
	}); !ok {
		t.Fatal("replica did not catch up")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dir, "redis-"+master[strings.LastIndexByte(master, ':')+1:]+".pid"))))))
	if err != nil {
		t.Fatal(err)
	}
	pr := px.probe(3)
	defer pr.close()
	time.Sleep(300 * time.Millisecond)

	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A surviving node reports the replica as the slot's master, with the
	// cluster ok again.
	survivor := redis.NewClient(&redis.Options{Addr: replicas[0]})
	defer survivor.Close()
	promoted, ok := e2eproc.WaitFor(60*time.Second, func() bool {
		m, _ := owner(survivor)
		info, _ := survivor.ClusterInfo(ctx).Result()
		return m != "" && m != master && strings.Contains(info, "cluster_state:ok")
	})
	if !ok {
		t.Fatal("the cluster did not promote the replica within 60 s")
	}
	ok200, ok := pr.firstOKAfter(killed, clusterRecovery+20*time.Second)
	t.Logf("cluster: promotion %.2f s after the kill; first 200 %.2f s after the promotion (answers since the kill: %s)",
		promoted.Sub(killed).Seconds(), ok200.Sub(promoted).Seconds(), pr.summary(killed))
	if !ok || ok200.Sub(promoted) > clusterRecovery {
		t.Fatalf("first 200 not within %s of the promotion", clusterRecovery)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
