package jsonscan

import (
	"encoding/json"
	"testing"
)

func TestField(t *testing.T) {
	cases := []struct {
		name, doc, key, want string
		found                bool
	}{
		{"top-level object", `{"type":"message","usage":{"input_tokens":3}}`, "usage", `{"input_tokens":3}`, true},
		{"after nested values", `{"a":[1,{"usage":0}],"b":"\"usage\"","usage":7}`, "usage", `7`, true},
		{"blanks", " { \"x\" : 1 ,\n \"usage\" : { } } ", "usage", `{ }`, true},
		{"absent", `{"a":1}`, "usage", "", false},
		{"only the top level", `{"m":{"usage":1}}`, "usage", "", false},
		{"not an object", `[{"usage":1}]`, "usage", "", false},
		{"truncated", `{"usage":{"input_tokens":`, "usage", `{"input_tokens":`, true},
		{"empty", ``, "usage", "", false},
		{"key without value", `{"usage"`, "usage", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Field([]byte(c.doc), c.key)
			if (got != nil) != c.found || string(got) != c.want {
				t.Fatalf("Field = %q (found %v), want %q (found %v)", got, got != nil, c.want, c.found)
			}
		})
	}
}

// On any input Field never panics, and on valid JSON it agrees with
// encoding/json for a key without escapes.
func FuzzField(f *testing.F) {
	for _, s := range []string{`{"usage":{"a":1}}`, `{"a":"}","usage":[1,2]}`, `{"usage"`, `{`, `{"a":1,"usage":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Field(b, "usage")
		if !Valid(b) {
			return
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			return // valid, but not an object
		}
		want, ok := m["usage"]
		if bytesHasEscapedKey(b) || duplicateUsage(b) {
			return // escaped keys are not decoded; duplicates: encoding/json keeps the last
		}
		if ok != (got != nil) || (ok && string(want) != string(got)) {
			t.Fatalf("Field(%q) = %q, encoding/json %q (%v)", b, got, want, ok)
		}
	})
}

func bytesHasEscapedKey(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\\' {
			return true
		}
	}
	return false
}

func duplicateUsage(b []byte) bool {
	n := 0
	for i := 0; i+7 <= len(b); i++ {
		if string(b[i:i+7]) == `"usage"` {
			n++
		}
	}
	return n > 1
}

// ValidField answers as Valid and Field together do.
func FuzzValidField(f *testing.F) {
	f.Add([]byte(`{"type":"message","usage":{"input_tokens":3},"usage":1}`), "usage")
	f.Add([]byte(`{"a":[1,{"usage":0}],"b":"\"usage\"","usage":7}`), "usage")
	f.Add([]byte(`{"usage"`), "usage")
	f.Add([]byte(`[{"usage":1}]`), "usage")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		got, ok := ValidField(b, key)
		if want := Valid(b); ok != want {
			t.Fatalf("ValidField(%q) ok = %v, Valid = %v", b, ok, want)
		}
		if ok && string(got) != string(Field(b, key)) {
			t.Fatalf("ValidField(%q, %q) = %q, Field = %q", b, key, got, Field(b, key))
		}
	})
}
