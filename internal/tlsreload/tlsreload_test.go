package tlsreload_test

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/claude-route/claude-route/internal/testenv"
	"github.com/claude-route/claude-route/internal/tlsreload"
)

// A renewed pair is served to the next connection without a restart; a
// renewal that does not load (half written, mismatched) keeps the pair
// that worked and says why once.
func TestRenewalWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	first := testenv.WriteCert(t, dir, 1)
	var mu sync.Mutex
	var errs []string
	r, err := tlsreload.New(first.CertFile, first.KeyFile, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err.Error())
	})
	if err != nil {
		t.Fatal(err)
	}
	// As serve does it: a TLS listener under a plain http.Server, which
	// speaks HTTP/2 when ALPN chose h2.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Proto))
	})}
	go func() { _ = hs.Serve(tls.NewListener(ln, r.Config())) }()
	defer hs.Close()
	url := "https://" + ln.Addr().String()

	serial := func(c testenv.Cert) (int64, string) {
		t.Helper()
		// A new transport per call: a new connection, so a new handshake.
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.Pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.Proto
	}
	if got, proto := serial(first); got != 1 || proto != "HTTP/2.0" {
		t.Fatalf("first: serial %d over %s, want 1 over HTTP/2.0", got, proto)
	}

	second := testenv.WriteCert(t, dir, 2)
	if got, proto := serial(second); got != 2 {
		t.Fatalf("after renewal: serial %d (%s), want 2", got, proto)
	}

	// A certificate whose key is not yet written (a renewal half done).
	keep, err := os.ReadFile(second.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(second.KeyFile, []byte("-----BEGIN EC PRIVATE KEY-----\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got, proto := serial(second); got != 2 {
			t.Fatalf("half-written renewal: serial %d (%s), want the previous pair (2)", got, proto)
		}
	}
	mu.Lock()
	if len(errs) != 1 || !strings.Contains(errs[0], "still serving the previous one") {
		t.Fatalf("errors reported: %q, want one", errs)
	}
	mu.Unlock()
	if err := os.WriteFile(second.KeyFile, keep, 0o600); err != nil {
		t.Fatal(err)
	}
	third := testenv.WriteCert(t, dir, 3)
	if got, proto := serial(third); got != 3 {
		t.Fatalf("after the next renewal: serial %d (%s), want 3", got, proto)
	}
}

func TestNewRefusesAPairThatDoesNotLoad(t *testing.T) {
	dir := t.TempDir()
	c := testenv.WriteCert(t, dir, 1)
	other := testenv.WriteCert(t, t.TempDir(), 2)
	if _, err := tlsreload.New(c.CertFile, other.KeyFile, nil); err == nil {
		t.Fatal("a certificate with another certificate's key loaded")
	}
	if _, err := tlsreload.New(dir+"/missing.pem", c.KeyFile, nil); err == nil {
		t.Fatal("a missing certificate loaded")
	}
}
