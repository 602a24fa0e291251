package relay

import (
	"net"
	"net/http"
	"time"
)

// Transport defaults. The HTTP/2 health check pings a connection that has
// been silent for pingAfter and drops it when the ping is not answered
// within pingTimeout, so a half-dead upstream connection (a NAT that forgot
// it, a load balancer that vanished) fails in seconds instead of hanging
// every stream multiplexed on it.
const (
	pingAfter   = 30 * time.Second
	pingTimeout = 15 * time.Second
)

// NewTransport is the upstream transport: HTTP/2 with health checks,
// bounded dialing and TLS handshakes, and a bound on the wait for response
// headers (non-streamed answers send headers only when complete, so it is
// long; UPSTREAM_HEADER_TIMEOUT).
func NewTransport(headerTimeout time.Duration) *http.Transport {
	return newTransport(headerTimeout, pingAfter, pingTimeout)
}

func newTransport(headerTimeout, pingAfter, pingTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = headerTimeout
	t.MaxIdleConnsPerHost = 64
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ForceAttemptHTTP2 = true
	t.HTTP2 = &http.HTTP2Config{SendPingTimeout: pingAfter, PingTimeout: pingTimeout}
	return t
}
