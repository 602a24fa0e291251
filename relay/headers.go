package relay

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// OAuthBeta is the anthropic-beta value OAuth accounts need upstream.
const OAuthBeta = "oauth-2025-04-20"

// hopHeaders are connection-scoped (RFC 9110 §7.6.1) and never forwarded.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// notForwarded are left to the outbound request itself: the transport
// sets Host and the length, and negotiates Accept-Encoding so that it
// decompresses transparently and the usage tap reads the bytes.
var notForwarded = map[string]bool{"Host": true, "Content-Length": true, "Accept-Encoding": true}

// credentialHeaders are the folded names (lower case, '_' as '-') of
// client headers that carry a credential: they never leave the proxy. A
// customer who could send one upstream could make the account answer 401
// and get it blacklisted. nginx, Envoy and many CGI-style stacks treat
// x_api_key as x-api-key, so a name that folds to a credential is one.
var credentialHeaders = []string{"x-api-key", "authorization", "cookie", "proxy-authorization"}

// isCredential reports whether the header name folds to a credential's,
// comparing in place (a name's spaces trimmed, case and '_' folded).
func isCredential(name string) bool {
	name = strings.TrimSpace(name)
	for _, c := range credentialHeaders {
		if foldEqual(name, c) {
			return true
		}
	}
	return false
}

// foldEqual compares name with a lower-case, '-' spelled target as
// strings.ToLower (ASCII) and '_' → '-' would, without building either.
func foldEqual(name, target string) bool {
	if len(name) != len(target) {
		return false // ToLower keeps an ASCII name's length; non-ASCII never folds to these
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == '_':
			c = '-'
		}
		if c != target[i] {
			return false
		}
	}
	return true
}

// OutboundHeaders builds the headers sent upstream: the client's own, as
// sent, minus hop-by-hop headers (and those named by Connection), anything
// that folds to a credential name, and what the transport sets itself.
// Only the headers kept are copied (one map, one backing array for their
// values), instead of cloning everything and deleting.
func OutboundHeaders(in http.Header) http.Header {
	var named []string // the names Connection lists, canonical (as Del would find them)
	for _, f := range in["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				named = append(named, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	drop := func(k string) bool {
		return hopHeaders[k] || notForwarded[k] || isCredential(k) || slices.Contains(named, k)
	}
	keys, vals := 0, 0
	for k, vv := range in {
		if !drop(k) {
			keys, vals = keys+1, vals+len(vv)
		}
	}
	h := make(http.Header, keys)
	all := make([]string, vals)
	for k, vv := range in {
		switch {
		case drop(k):
		case vv == nil:
			h[k] = nil // as Clone keeps it
		default:
			n := copy(all, vv)
			h[k] = all[:n:n]
			all = all[n:]
		}
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
