package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
)

// ADMIN_LISTEN_ADDR moves /metrics, the admin API and the dashboard off
// the public listener.
func TestAdminListenAddr(t *testing.T) {
	redisURL := testenv.RedisURL(t, 8)
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := probe.Addr().String()
	probe.Close()
	env := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "ADMIN_LISTEN_ADDR": adminAddr, "REDIS_URL": redisURL,
		"ACCOUNT_DIR": t.TempDir(), "PRODUCT_DIR": t.TempDir(), "ADMIN_TOKEN": "op-token-0123456789",
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- cmdServe(ctx, envOf(env), io.Discard, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	get := func(base, path string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+base+path, nil)
		req.Header.Set("Authorization", "Bearer op-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range []string{"/metrics", "/admin/api/status", "/admin/"} {
		if st := get(addr, p); st != http.StatusNotFound {
			t.Errorf("public %s: %d, want 404", p, st)
		}
		if st := get(adminAddr, p); st != http.StatusOK {
			t.Errorf("admin %s: %d, want 200", p, st)
		}
	}
}
