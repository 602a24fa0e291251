package relay

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

// fold is a header name as proxies compare it: lower case, '_' as '-'.
// nginx, Envoy and many CGI-style stacks treat x_api_key as x-api-key, so
// a name that folds to a credential is one.
func fold(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
}

// credentialHeaders are the folded names of client headers that carry a
// credential: they never leave the proxy. A customer who could send one
// upstream could make the account answer 401 and get it blacklisted.
var credentialHeaders = map[string]bool{
	"x-api-key": true, "authorization": true, "cookie": true, "proxy-authorization": true,
}

// OutboundHeaders builds the headers sent upstream: the client's own, as
// sent, minus hop-by-hop headers and anything that folds to a credential
// name. Accept-Encoding is left to the transport, which then decompresses
// transparently and lets the usage tap read the bytes.
func OutboundHeaders(in http.Header) http.Header {
	h := in.Clone()
	removeHop(h)
	for k := range h {
		if credentialHeaders[fold(k)] {
			delete(h, k)
		}
	}
	for _, k := range []string{"Host", "Content-Length", "Accept-Encoding"} {
		h.Del(k)
	}
	return h
}

// setCredential adds the account's own credential: OAuth accounts use a
// Bearer token plus the OAuth beta (merged with the client's betas),
// API-key accounts x-api-key.
func setCredential(h http.Header, t Target) {
	if t.OAuth {
		h.Set("Authorization", "Bearer "+t.Token)
		MergeBeta(h, OAuthBeta)
		return
	}
	h.Set("X-Api-Key", t.Token)
}

// MergeBeta adds value to the comma-separated anthropic-beta list without
// duplicating it and keeps the client's own values in their order.
func MergeBeta(h http.Header, value string) {
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

// responseAllow are the upstream response headers a customer may see. It
// is an allowlist: the account's rate-limit state (anthropic-ratelimit-*),
// its organization id and anything the upstream adds tomorrow stay inside.
// The key's own x-ratelimit-* headers are set by the server.
var responseAllow = map[string]bool{
	"Content-Type":      true,
	"Content-Encoding":  true,
	"Content-Language":  true,
	"Cache-Control":     true,
	"Request-Id":        true,
	"X-Request-Id":      true,
	"Anthropic-Version": true,
	"Date":              true,
	"Vary":              true,
}

// errorAllow are allowed on error answers only: retry-after tells a
// client when an overload or limit passes.
var errorAllow = map[string]bool{"Retry-After": true, "X-Should-Retry": true}

// CopyResponseHeaders copies the allowed upstream headers into dst. The
// length passes for whole answers only: the proxy may end a stream early
// with an error event, so it does not promise a stream's length.
// The copied values share one backing array (each header's slice capped
// at its own end, so an Add to one never writes into the next): one
// allocation per answer instead of one per header.
func CopyResponseHeaders(dst, src http.Header, status int) {
	sse := IsSSE(src)
	var vals []string
	for k, vv := range src {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if responseAllow[ck] || (status >= 400 && errorAllow[ck]) || (ck == "Content-Length" && !sse) {
			if vals == nil {
				vals = make([]string, 0, valueCount(src))
			}
			i := len(vals)
			vals = append(vals, vv...)
			dst[ck] = vals[i:len(vals):len(vals)]
		}
	}
}

// valueCount is how many values h holds.
func valueCount(h http.Header) int {
	n := 0
	for _, vv := range h {
		n += len(vv)
	}
	return n
}
