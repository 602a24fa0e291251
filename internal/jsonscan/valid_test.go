package jsonscan

import (
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
