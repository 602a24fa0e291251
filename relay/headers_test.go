package relay

import (
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"
)

// outboundByDeletion is how OutboundHeaders worked before it copied only
// what it keeps: clone everything, then delete. It is the oracle the
// copying version must agree with.
func outboundByDeletion(in http.Header) http.Header {
	h := in.Clone()
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for k := range hopHeaders {
		h.Del(k)
	}
	for k := range h {
		switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "_", "-") {
		case "x-api-key", "authorization", "cookie", "proxy-authorization":
			delete(h, k)
		}
	}
	for k := range notForwarded {
		h.Del(k)
	}
	return h
}

// headerOf reads "Name: value" lines into a header with the names exactly
// as written (a lenient client's raw names included).
func headerOf(lines string) http.Header {
	h := http.Header{}
	for _, l := range strings.Split(lines, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			h[k] = append(h[k], strings.TrimSpace(v))
		}
	}
	return h
}

func TestOutboundHeadersAsByDeletion(t *testing.T) {
	for _, lines := range []string{
		"",
		"Content-Type: application/json\nAnthropic-Version: 2023-06-01\nAnthropic-Beta: a\nAnthropic-Beta: b\nUser-Agent: x",
		"Connection: keep-alive, X-Hop ,x_raw\nKeep-Alive: 5\nX-Hop: 1\nx_raw: 2\nX-Stay: 3\nTe: trailers\nUpgrade: h2c",
		"X-Api-Key: s\nx_api_key: s\n X-API_KEY : s\nAuthorization: s\nCOOKIE: s\nProxy_Authorization: s\nX-Api-Keys: kept",
		"Host: h\nContent-Length: 3\nAccept-Encoding: gzip\nTransfer-Encoding: chunked\nTrailer: x\nProxy-Connection: x",
		"Connection: ,,\nX-Émoji: ok\nx-api-kéy: kept",
	} {
		in := headerOf(lines)
		in["X-Nil"] = nil
		got, want := OutboundHeaders(in), outboundByDeletion(in)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("headers %q:\n got %v\nwant %v", lines, got, want)
		}
		// The copy shares nothing with the client's header.
		for k := range got {
			if len(got[k]) > 0 {
				got[k][0] = "changed"
				if in[k][0] == "changed" {
					t.Fatalf("%s shares its values with the client's header", k)
				}
			}
		}
	}
}

func FuzzOutboundHeaders(f *testing.F) {
	f.Add("Connection: X-A\nX-A: 1\nx_api_key: s\nContent-Type: j")
	f.Add("Authorization: s\nKeep-Alive: 1\nX-B: 2")
	f.Fuzz(func(t *testing.T, lines string) {
		in := headerOf(lines)
		if got, want := OutboundHeaders(in), outboundByDeletion(in); !reflect.DeepEqual(got, want) {
			t.Fatalf("headers %q:\n got %v\nwant %v", lines, got, want)
		}
	})
}

// BenchmarkOutboundHeaders is the cost per request of the headers sent
// upstream, for a typical SDK request: one map and one value array.
func BenchmarkOutboundHeaders(b *testing.B) {
	in := headerOf("Content-Type: application/json\nAnthropic-Version: 2023-06-01\nX-Api-Key: sk-cli-v1-x\n" +
		"User-Agent: claude-cli/2.1\nAccept: application/json\nAccept-Encoding: gzip\nContent-Length: 2048\n" +
		"Connection: keep-alive\nAnthropic-Beta: claude-code-20250219,oauth-2025-04-20\nX-Stainless-Lang: js\n" +
		"X-Stainless-Os: Linux\nX-Stainless-Retry-Count: 0\nX-App: cli")
	n, old := testing.AllocsPerRun(100, func() { OutboundHeaders(in) }), testing.AllocsPerRun(100, func() { outboundByDeletion(in) })
	b.Logf("allocations per request: %v (by deletion: %v)", n, old)
	if n > 7 {
		b.Fatalf("%v allocations per request, want at most 7", n)
	}
	for _, c := range []struct {
		name string
		f    func(http.Header) http.Header
	}{{"copy", OutboundHeaders}, {"by-deletion", outboundByDeletion}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				c.f(in)
			}
		})
	}
}
