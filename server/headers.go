package server

import (
	"net/http"
	"net/textproto"
	"strings"
)

// OAuthBeta is the anthropic-beta value OAuth accounts need upstream.
const OAuthBeta = "oauth-2025-04-20"

// hopHeaders are connection-scoped (RFC 9110 §7.6.1) and never forwarded.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHop deletes hop-by-hop headers, including any named by Connection.
func removeHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// upstreamHeaders builds the headers sent upstream: the client's own, as
// sent, minus hop-by-hop headers and the client's credential, which never
// leaves the proxy. Accept-Encoding is left to the transport, which then
// decompresses transparently and lets the usage tap read the bytes.
func upstreamHeaders(in http.Header) http.Header {
	h := in.Clone()
	removeHop(h)
	for _, k := range []string{"X-Api-Key", "Authorization", "Host", "Content-Length", "Accept-Encoding", "Cookie"} {
		h.Del(k)
	}
	return h
}

// mergeBeta adds value to the comma-separated anthropic-beta list without
// duplicating it and keeps the client's own values in their order.
func mergeBeta(h http.Header, value string) {
	var out []string
	seen := map[string]bool{}
	for _, line := range h.Values("Anthropic-Beta") {
		for _, v := range strings.Split(line, ",") {
			v = strings.TrimSpace(v)
			if v != "" && !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	if !seen[value] {
		out = append(out, value)
	}
	h.Set("Anthropic-Beta", strings.Join(out, ","))
}

// copyResponseHeaders passes the upstream's headers back (status, request-id,
// content and rate-limit headers), minus hop-by-hop ones and a length the
// proxy does not promise to keep.
func copyResponseHeaders(dst, src http.Header) {
	for k, vv := range src {
		switch textproto.CanonicalMIMEHeaderKey(k) {
		case "Content-Length", "Set-Cookie":
			continue
		}
		dst[k] = append([]string(nil), vv...)
	}
	removeHop(dst)
}
