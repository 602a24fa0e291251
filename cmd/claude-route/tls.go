package main

import (
	"crypto/tls"
	"net"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/tlsreload"
)

// serveTLS wraps the public listener in TLS when TLS_CERT_FILE and
// TLS_KEY_FILE are set: HTTPS with HTTP/2 (ALPN h2), the pair re-read
// when its files change, so a renewed certificate needs no restart.
func serveTLS(cfg *config, ln net.Listener, log logrus.FieldLogger) (net.Listener, error) {
	if cfg.TLSCertFile == "" {
		return ln, nil
	}
	r, err := tlsreload.New(cfg.TLSCertFile, cfg.TLSKeyFile, func(err error) {
		log.WithError(err).Error("TLS certificate files changed but do not load")
	})
	if err != nil {
		ln.Close()
		return nil, &configError{"TLS_CERT_FILE", err}
	}
	log.Infof("serving HTTPS (HTTP/2 and HTTP/1.1) with %s; a renewed pair is picked up without a restart", cfg.TLSCertFile)
	return tls.NewListener(ln, r.Config()), nil
}

// healthClient is how `healthcheck` reaches the local server: over HTTPS
// when it serves TLS. It asks loopback whether the process answers, not
// who it is, so the certificate (made for the public name) is not
// verified; nothing secret is sent.
func healthClient(getenv func(string) string, hostport string) (string, *http.Client) {
	if env(getenv, "TLS_CERT_FILE", "") == "" {
		return "http://" + hostport + "/health", http.DefaultClient
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback liveness check, see above
	return "https://" + hostport + "/health", &http.Client{Transport: tr}
}
