package usage

import (
	"testing"

	"github.com/claude-route/claude-route/internal/jsonscan"
)

func FuzzSSETap(f *testing.F) {
	f.Add([]byte(fullStream), uint(100))
	f.Add([]byte(crlf(fullStream)), uint(1))
	f.Add([]byte(cr(fullStream)), uint(333))
	f.Add([]byte("event: error\r\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\r\n\r\n"), uint(13))
	f.Add([]byte("data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-5,\"input_tokens\":1e3}}\n\n"), uint(7))
	f.Add([]byte("event: ping\ndata: x\nevent: message_delta\n\n"), uint(20))
	f.Add([]byte("\r\r\n\n:\r\nevent\ndata\n\n"), uint(2))
	f.Fuzz(func(t *testing.T, stream []byte, split uint) {
		one := feed(t, stream)
		cut := 0
		if len(stream) > 0 {
			cut = int(split % uint(len(stream)+1))
		}
		// Copy the halves so that any retention of the caller's
		// buffer shows up as a difference.
		a, b := append([]byte(nil), stream[:cut]...), append([]byte(nil), stream[cut:]...)
		two := feed(t, a, b)
		if one != two {
			t.Fatalf("one chunk %+v, split at %d %+v", one, cut, two)
		}
		u := one.usage
		for _, v := range []int64{u.InputTokens, u.OutputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens, u.Total()} {
			if v < 0 {
				t.Fatalf("negative count in %+v", u)
			}
		}
		if !one.ok && u != (Usage{}) {
			t.Fatalf("usage %+v reported without ok", u)
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(fullJSON))
	f.Add([]byte(`{"usage":{"input_tokens":1.0,"output_tokens":9223372036854775807}}`))
	f.Add([]byte(`{"usage":{"input_tokens":-1,"output_tokens":"x","cache_read_input_tokens":null}}`))
	f.Add([]byte(`{"type":"error","error":{"type":"api_error","message":"x"}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		u, ok := ParseJSON(body)
		for _, v := range []int64{u.InputTokens, u.OutputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens, u.Total()} {
			if v < 0 || v > 4*MaxCount {
				t.Fatalf("count out of range in %+v", u)
			}
		}
		if !ok && u != (Usage{}) {
			t.Fatalf("usage %+v reported without ok", u)
		}
		// One pass finds what validating and then looking for the field did.
		var wu Usage
		wok := false
		if jsonscan.Valid(body) {
			wu, wok = usageAt(jsonscan.Field(body, "usage"))
		}
		if wu != u || wok != ok {
			t.Fatalf("ParseJSON %+v %v, Valid then Field %+v %v", u, ok, wu, wok)
		}
		// The tap with room for the body agrees with ParseJSON.
		tap := NewJSONTap(len(body))
		_, _ = tap.Write(body)
		if tu, tok := tap.Usage(); tu != u || tok != ok {
			t.Fatalf("tap %+v %v, ParseJSON %+v %v", tu, tok, u, ok)
		}
	})
}
