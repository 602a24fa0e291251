package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
)

// serve with TLS_CERT_FILE and TLS_KEY_FILE answers HTTPS over HTTP/2; a
// certificate renewed on disk is served to the next connection, with no
// restart; `healthcheck` (the image's HEALTHCHECK) speaks HTTPS to it.
func TestServeTLSPicksUpARenewal(t *testing.T) {
	redisURL := testenv.RedisURL(t, 8)
	dir := t.TempDir()
	first := testenv.WriteCert(t, dir, 101)
	env := map[string]string{
		"LISTEN_ADDR": "127.0.0.1:0", "REDIS_URL": redisURL,
		"ACCOUNT_DIR": t.TempDir(), "PRODUCT_DIR": t.TempDir(),
		"TLS_CERT_FILE": first.CertFile, "TLS_KEY_FILE": first.KeyFile,
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- cmdServe(ctx, envOf(env), io.Discard, ready) }()
	addr := <-ready
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	get := func(c testenv.Cert) (serial int64, proto string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/health")
		if err != nil {
			t.Fatalf("GET /health over TLS: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/health: %s", resp.Status)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.Proto
	}
	if serial, proto := get(first); serial != 101 || proto != "HTTP/2.0" {
		t.Fatalf("serial %d over %s, want 101 over HTTP/2.0", serial, proto)
	}
	renewed := testenv.WriteCert(t, dir, 102)
	if serial, _ := get(renewed); serial != 102 {
		t.Fatalf("after the renewal: serial %d, want 102", serial)
	}
	henv := map[string]string{"LISTEN_ADDR": addr, "TLS_CERT_FILE": renewed.CertFile}
	var stderr bytes.Buffer
	if code := run(ctx, []string{"healthcheck"}, envOf(henv), io.Discard, &stderr); code != 0 {
		t.Fatalf("healthcheck over TLS: exit %d %s", code, stderr.String())
	}
}

func TestBadDeployConfiguration(t *testing.T) {
	dir := t.TempDir()
	c := testenv.WriteCert(t, dir, 1)
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TLS_CERT_FILE": c.CertFile}, "TLS_KEY_FILE"},
		{map[string]string{"TLS_KEY_FILE": c.KeyFile}, "TLS_CERT_FILE"},
		{map[string]string{"TLS_CERT_FILE": c.KeyFile, "TLS_KEY_FILE": c.KeyFile}, "TLS_CERT_FILE"},
		{map[string]string{"TLS_CERT_FILE": filepath.Join(dir, "none.pem"), "TLS_KEY_FILE": c.KeyFile}, "TLS_CERT_FILE"},
		{map[string]string{"METRICS_PUBLIC": "sometimes"}, "METRICS_PUBLIC"},
		{map[string]string{"ALERT_WEBHOOK_URL": "hooks.slack.com/services/T0/B0/secret"}, "ALERT_WEBHOOK_URL"},
		{map[string]string{"ALERT_WEBHOOK_URL": "ftp://example.com/hook"}, "ALERT_WEBHOOK_URL"},
		{map[string]string{"ALERT_WEBHOOK_URL": "https:///no-host"}, "ALERT_WEBHOOK_URL"},
		{map[string]string{"REDIS_URL": "redis://127.0.0.1:1", "STORE_FILE": filepath.Join(dir, "s")}, "STORE_FILE"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"serve"}, envOf(tc.env), io.Discard, &stderr)
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Fatalf("exit %d, stderr %q: want one line naming %s", code, stderr.String(), tc.want)
			}
			if strings.Contains(stderr.String(), "/B0/") {
				t.Fatalf("the webhook URL (a secret) is in the error: %q", stderr.String())
			}
		})
	}
}
