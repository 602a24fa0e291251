// Package testenv gives tests the real services they need: a real Redis from
// REDIS_URL. Outside CI a missing service skips the test; in CI (CI=true) it
// fails it, so a green CI always means the real-store suites ran.
package testenv

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/store"
)

// InCI reports whether the tests run under CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips (or, in CI, fails) the test when a needed service is missing.
func Require(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("%s is required in CI but missing", what)
	}
	t.Skipf("%s not available; set it up with .ci/run", what)
}

// IsCluster reports whether REDIS_URL names a Redis Cluster.
func IsCluster() bool {
	o, err := store.ParseURL(os.Getenv("REDIS_URL"))
	return err == nil && o.IsClusterMode
}

// Redis returns a client to the real Redis of REDIS_URL, emptied first.
// db picks a logical database so that packages tested in parallel do not
// see each other's keys; each package uses its own number (see DESIGN.md).
// A cluster has only database 0: its suite runs packages one at a time.
func Redis(t testing.TB, db int) redis.UniversalClient {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	Require(t, url != "", "REDIS_URL (a real redis-server)")
	o, err := store.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	if !o.IsClusterMode && o.MasterName == "" {
		o.DB = db
	}
	c := redis.NewUniversalClient(o)
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("REDIS_URL %s unreachable: %v", url, err)
	}
	Flush(t, c)
	return c
}

// Flush empties the store, every master of a cluster included.
func Flush(t testing.TB, c redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return m.FlushDB(ctx).Err()
		})
	} else {
		err = c.FlushDB(ctx).Err()
	}
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// Mini returns a client to a fresh in-process miniredis, for fast unit tests.
func Mini(t testing.TB) (redis.UniversalClient, *miniredis.Miniredis) {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}})
	t.Cleanup(func() { _ = c.Close() })
	return c, m
}

// RedisURL returns a REDIS_URL for the real Redis, pointing at logical
// database db (ignored for a cluster), emptied first. Use it to start whole
// servers; use Redis for a client.
func RedisURL(t testing.TB, db int) string {
	t.Helper()
	c := Redis(t, db)
	_ = c
	url := os.Getenv("REDIS_URL")
	if IsCluster() {
		return url
	}
	o, _ := store.ParseURL(url)
	if o.MasterName != "" {
		return url
	}
	u := "redis://"
	if o.Password != "" {
		u += o.Username + ":" + o.Password + "@"
	}
	return u + o.Addrs[0] + "/" + strconv.Itoa(db)
}

// Server is a redis-server process of the test's own, which the test may
// stop and start again (store-fault tests). Its data survives restarts
// (append-only file in a temp folder).
type Server struct {
	t    testing.TB
	Port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis starts a private redis-server on a free loopback port.
func StartRedis(t testing.TB) *Server {
	t.Helper()
	_, err := exec.LookPath("redis-server")
	Require(t, err == nil, "redis-server")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{t: t, Port: port, dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's REDIS_URL.
func (s *Server) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(s.Port) }

// Start (re)starts the process and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--dir", s.dir, "--appendonly", "yes", "--save", "")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.Port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatal("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the process (its append-only file keeps the data).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause freezes the process (SIGSTOP): connections hang instead of failing.
func (s *Server) Pause() { _ = s.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Server) Resume() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }

// Buffer is a bytes.Buffer safe for concurrent writers and readers: tests
// point loggers at it and read everything a run wrote.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Backend is one Redis a table test runs its cases against.
type Backend struct {
	Name string
	Open func(t testing.TB) redis.UniversalClient
}

// Backends are a fresh miniredis and the real Redis of REDIS_URL (logical
// database db): behaviour that depends on atomicity is checked on both.
func Backends(db int) []Backend {
	return []Backend{
		{"miniredis", func(t testing.TB) redis.UniversalClient { c, _ := Mini(t); return c }},
		{"real redis", func(t testing.TB) redis.UniversalClient { return Redis(t, db) }},
	}
}
