package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var validSeeds = []string{
	`{}`, `[]`, `""`, `0`, `-0`, `1.5e+3`, `-12.0E-2`, `true`, `false`, `null`, ` {"a" : [1, 2, {"b": null}] } `,
	`{"model":"claude-sonnet-4-5","stream":true,"messages":[{"role":"user","content":"hi \u00e9 \" \\ \/ \b\f\n\r\t"}]}`,
	// invalid
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{,}`, `[,1]`, `01`, `1.`, `.5`, `1e`, `1e+`, `-`, `+1`,
	`tru`, `nul`, `falsey`, `"abc`, `"\x"`, `"\u12G4"`, `"\u123"`, "\"a\tb\"", `{"a":1}{}`, `[1] 2`, `{1:2}`, `NaN`,
	`[[[[[]]]]]`, `[[[[[]]]]`, `{"a":[}`, `"\`, `{"a":1 "b":2}`, `[1 2]`,
}

func TestValidMatchesEncodingJSON(t *testing.T) {
	cases := append([]string{}, validSeeds...)
	cases = append(cases, strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth),
		strings.Repeat("[", maxDepth+1)+strings.Repeat("]", maxDepth+1),
		strings.Repeat(`{"a":`, maxDepth)+"1"+strings.Repeat("}", maxDepth))
	for _, c := range cases {
		name := c
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			if got, want := Valid([]byte(c)), json.Valid([]byte(c)); got != want {
				t.Fatalf("validJSON = %v, json.Valid = %v", got, want)
			}
		})
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":64,"stream":false,"messages":[{"role":"user","content":"` + strings.Repeat("hello world, ", 150) + `"}]}`)
	b.Run("Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			Valid(body)
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			json.Valid(body)
		}
	})
}

// codeBody is a Messages body as coding agents send them: source code and
// tool output, where escapes (\n, \t, \") come every few bytes rather than
// once a paragraph. It is what the request path mostly scans.
func codeBody() []byte {
	code := "func (s *Store) Get(ctx context.Context, id string) (*Account, error) {\n\traw, err := s.rdb.HGetAll(ctx, \"account:\"+id).Result()\n\tif err != nil {\n\t\treturn nil, fmt.Errorf(\"get account %s: %w\", id, err)\n\t}\n\treturn decode(raw)\n}\n"
	type block struct {
		Type    string `json:"type"`
		Text    string `json:"text,omitempty"`
		Content string `json:"content,omitempty"`
	}
	type msg struct {
		Role    string  `json:"role"`
		Content []block `json:"content"`
	}
	var msgs []msg
	for i := 0; i < 8; i++ {
		msgs = append(msgs,
			msg{"user", []block{{Type: "tool_result", Content: strings.Repeat(code, 4)}}},
			msg{"assistant", []block{{Type: "text", Text: "The wrapping with %w is right; pass a deadline through ctx."}}})
	}
	b, _ := json.Marshal(map[string]any{"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": true, "messages": msgs})
	return b
}

func BenchmarkScanCode(b *testing.B) {
	body := codeBody()
	b.Run("Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !Valid(body) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("Field", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if Field(body, "stream") == nil {
				b.Fatal("no stream")
			}
		}
	})
}

// ValidObject answers as Valid does and, for an object, reports exactly
// its top-level members: put back together they are the same document.
func FuzzValidObject(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"a":{},"b":[],"c":{"d":[1,{"e":"}"}]},"f":"x\"y","g\\":true, "h" : null }`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var parts [][]byte
		got := ValidObject(b, func(key, val []byte, at int) {
			if string(b[at:at+len(val)]) != string(val) {
				t.Fatalf("member value %q is not at %d", val, at)
			}
			parts = append(parts, append(append(append([]byte(nil), key...), ':'), val...))
		})
		if want := json.Valid(b); got != want {
			t.Fatalf("ValidObject(%q) = %v, json.Valid = %v", b, got, want)
		}
		if i := SkipWS(b, 0); !got || b[i] != '{' {
			return
		}
		rebuilt := []byte("{" + string(bytes.Join(parts, []byte(","))) + "}")
		var x, y bytes.Buffer
		if err := json.Compact(&x, b); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&y, rebuilt); err != nil || x.String() != y.String() {
			t.Fatalf("members of %q rebuild %q (%v)", b, rebuilt, err)
		}
	})
}
