package admission

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestScanBody(t *testing.T) {
	cases := []struct {
		name, body string
		model      string
		stream     bool
		err        string // substring of the refusal; "" means accepted
	}{
		{"plain", `{"model":"claude-sonnet-4-5","max_tokens":5}`, "claude-sonnet-4-5", false, ""},
		{"stream true", `{"stream":true,"model":"m"}`, "m", true, ""},
		{"stream null", `{"model":"m","stream":null}`, "m", false, ""},
		{"stream last wins", `{"model":"m","stream":true,"stream":false}`, "m", false, ""},
		{"whitespace", " \n{ \"model\" :\t\"m\" , \"stream\" : true }\r\n", "m", true, ""},
		{"nested model is not the model", `{"metadata":{"model":"x","Model":"y"},"model":"m","messages":[{"model":"z"}]}`, "m", false, ""},
		{"escaped key", `{"mod\u0065l":"m"}`, "m", false, ""},
		{"escaped value", `{"model":"claude-\u006fpus-4-1"}`, "claude-opus-4-1", false, ""},
		{"braces in strings", `{"system":"} { \" ]","model":"m"}`, "m", false, ""},
		{"Stream variant ignored", `{"model":"m","Stream":true}`, "m", false, ""},
		{"case variant after", `{"model":"claude-opus-4-1","Model":"claude-sonnet-4-5"}`, "", false, "case variant"},
		{"case variant before", `{"MODEL":"claude-sonnet-4-5","model":"claude-opus-4-1"}`, "", false, "case variant"},
		{"escaped case variant", `{"model":"a","\u004dodel":"b"}`, "", false, "case variant"},
		{"case variant alone", `{"Model":"m"}`, "", false, "case variant"},
		{"duplicate", `{"model":"claude-sonnet-4-5","model":"claude-opus-4-1"}`, "", false, "more than once"},
		{"escaped duplicate", `{"model":"a","mod\u0065l":"b"}`, "", false, "more than once"},
		{"missing", `{"max_tokens":5}`, "", false, "model: Field required"},
		{"empty", `{"model":"  "}`, "", false, "model: Field required"},
		{"number", `{"model":4}`, "", false, "model: Field required"},
		{"null", `{"model":null}`, "", false, "model: Field required"},
		{"array", `[{"model":"m"}]`, "", false, "expected a JSON object"},
		{"string", `"model"`, "", false, "expected a JSON object"},
		{"truncated", `{"model": "m",`, "", false, "not valid JSON"},
		{"nothing", ``, "", false, "not valid JSON"},
		{"two values", `{"model":"m"} {}`, "", false, "not valid JSON"},
		{"bad utf-8", "{\"model\":\"m\xff\"}", "", false, "UTF-8"},
		{"stream not bool", `{"model":"m","stream":"yes"}`, "", false, "stream"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := ScanBody([]byte(c.body))
			if c.err != "" {
				var be *BodyError
				if !errors.As(err, &be) || !strings.Contains(be.Msg, c.err) {
					t.Fatalf("got %+v, %v; want a refusal containing %q", f, err, c.err)
				}
				return
			}
			if err != nil || f.Model != c.model || f.Stream != c.stream {
				t.Fatalf("got %+v, %v; want model %q stream %v", f, err, c.model, c.stream)
			}
		})
	}
}

// FuzzScanBody: ScanBody never panics, refuses with a BodyError or
// accepts, and what it accepts is what a case-sensitive exact reading of
// the object gives: the value under the key "model", with no other key
// that encoding/json would also take for it.
func FuzzScanBody(f *testing.F) {
	for _, s := range []string{
		`{"model":"claude-sonnet-4-5","stream":true}`,
		`{"model":"claude-opus-4-1","Model":"claude-sonnet-4-5"}`,
		`{"mod\u0065l":"m","x":[1,{"y":"}"}],"stream":false}`,
		`{"model":"a","model":"b"}`,
		`{"MODEL":"x"}`, `[]`, `{"model":"\ud800"}`, `{"model":"m","stream":null}`, ` {"a":1e5,"model":"m"} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ScanBody(b)
		if err != nil {
			var be *BodyError
			if !errors.As(err, &be) {
				t.Fatalf("refusal of %q is not a BodyError: %v", b, err)
			}
			return
		}
		var exact map[string]json.RawMessage
		if err := json.Unmarshal(b, &exact); err != nil {
			t.Fatalf("accepted %q, which is not a JSON object: %v", b, err)
		}
		var model string
		if err := json.Unmarshal(exact["model"], &model); err != nil || model != got.Model {
			t.Fatalf("accepted %q as model %q; the exact reading gives %q (%v)", b, got.Model, model, err)
		}
		var at string
		if err := json.Unmarshal(b[got.ModelAt[0]:got.ModelAt[1]], &at); err != nil || at != got.Model {
			t.Fatalf("%q: ModelAt %v holds %q, not the model %q", b, got.ModelAt, at, got.Model)
		}
		for k := range exact {
			if k != "model" && strings.EqualFold(k, "model") {
				t.Fatalf("accepted %q with the case variant %q", b, k)
			}
		}
		var stream bool
		if raw, ok := exact["stream"]; ok {
			_ = json.Unmarshal(raw, &stream)
		}
		if stream != got.Stream {
			t.Fatalf("accepted %q with stream %v; the exact reading gives %v", b, got.Stream, stream)
		}
		// The proxy's check and encoding/json's struct reading agree on
		// every accepted body (the bypass the refusal closes).
		var probe struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(b, &probe); err != nil || probe.Model != got.Model {
			t.Fatalf("accepted %q: struct reading gives %q (%v), scan %q", b, probe.Model, err, got.Model)
		}
	})
}

// BenchmarkScanBody reads a typical Messages body: the model's name is
// the only allocation (keys and an unescaped value are compared in place).
func BenchmarkScanBody(b *testing.B) {
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"system":"Be brief.",` +
		`"messages":[{"role":"user","content":"` + strings.Repeat("hello ", 300) + `"}],"metadata":{"user_id":"u1"}}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = ScanBody(body) }); n > 1 {
		b.Fatalf("%v allocations per body, want at most 1", n)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if f, err := ScanBody(body); err != nil || f.Model != "claude-sonnet-4-5" || !f.Stream {
			b.Fatalf("%+v %v", f, err)
		}
	}
}
