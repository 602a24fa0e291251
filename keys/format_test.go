package keys

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

const goodKey = "sk-cli-v1-Ab3xDEFGHIJKLMNOPQRSTUVWXYZ01234"

func TestCheckFormat(t *testing.T) {
	random := goodKey[len(KeyPrefix):]
	cases := []struct {
		name string
		key  string
		ok   bool
	}{
		{"valid", goodKey, true},
		{"valid digits only", KeyPrefix + strings.Repeat("7", 32), true},
		{"valid generated", Generate(), true},
		{"empty", "", false},
		{"prefix only", KeyPrefix, false},
		{"31 chars", KeyPrefix + random[:31], false},
		{"33 chars", KeyPrefix + random + "a", false},
		{"other version", "sk-cli-v2-" + random, false},
		{"upper-case prefix", "SK-CLI-V1-" + random, false},
		{"upstream key shape", "sk-ant-api0" + random[:31], false},
		{"dash", KeyPrefix + random[:31] + "-", false},
		{"underscore", KeyPrefix + "_" + random[1:], false},
		{"plus", KeyPrefix + random[:10] + "+" + random[11:], false},
		{"slash", KeyPrefix + random[:10] + "/" + random[11:], false},
		{"space", KeyPrefix + random[:10] + " " + random[11:], false},
		{"leading space", " " + KeyPrefix + random[1:], false},
		{"trailing newline", KeyPrefix + random[:31] + "\n", false},
		{"NUL", KeyPrefix + random[:31] + "\x00", false},
		// 30 ASCII + a 2-byte letter: 32 bytes, but not base62.
		{"non-ASCII letter", KeyPrefix + random[:30] + "é", false},
		// Fullwidth digit one (3 bytes) in place of 3 ASCII characters.
		{"fullwidth digit", KeyPrefix + random[:29] + "１", false},
		{"invalid UTF-8", KeyPrefix + random[:31] + "\xff", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckFormat(c.key)
			if c.ok {
				if err != nil {
					t.Fatalf("CheckFormat: %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("CheckFormat = %v, want ErrFormat", err)
			}
			// Errors get logged: they must not carry the secret part.
			if len(c.key) > len(KeyPrefix)+8 && strings.Contains(err.Error(), c.key[len(KeyPrefix):]) {
				t.Fatalf("error %q repeats the key", err)
			}
		})
	}
}

func TestGenerate(t *testing.T) {
	seen := make(map[string]bool)
	chars := make(map[rune]bool)
	for range 2000 {
		k := Generate()
		if err := CheckFormat(k); err != nil {
			t.Fatalf("Generate() = malformed key: %v", err)
		}
		if seen[k] {
			t.Fatal("Generate() repeated a key")
		}
		seen[k] = true
		for _, c := range k[len(KeyPrefix):] {
			chars[c] = true
		}
	}
	// 64,000 draws: every one of the 62 characters must have come up.
	if len(chars) != len(alphabet) {
		t.Fatalf("Generate used %d distinct characters, want %d", len(chars), len(alphabet))
	}
}

func TestGenerateRejectionSampling(t *testing.T) {
	// Bytes 248..255 would make b%62 favour '0'..'7'; they must be skipped,
	// not folded.
	var src []byte
	for range 8 {
		src = append(src, 248, 255, 0, 61, 62, 247)
	}
	got, err := generate(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := KeyPrefix + strings.Repeat("0z0z", 8)
	if got != want {
		t.Fatalf("generate = %q, want %q", got, want)
	}

	if _, err := generate(iotest.ErrReader(errors.New("no entropy"))); err == nil {
		t.Fatal("generate with a failing source: want an error")
	}
	if _, err := generate(bytes.NewReader(bytes.Repeat([]byte{250}, 100))); err == nil {
		t.Fatal("generate from a source of only rejected bytes: want an error when it runs dry")
	}
}

func TestHashIDPrefix(t *testing.T) {
	// SHA-256 of the empty string, a published test vector.
	if h := Hash(""); h != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("Hash(\"\") = %s", h)
	}
	h := Hash(goodKey)
	if !isHash(h) || strings.Contains(h, goodKey[len(KeyPrefix):]) {
		t.Fatalf("Hash = %q", h)
	}
	if id := ID(h); id != "k_"+h[:12] || !isID(id) {
		t.Fatalf("ID = %q", id)
	}
	if p := Prefix(goodKey); p != "sk-cli-v1-Ab3x…" {
		t.Fatalf("Prefix = %q", p)
	}
	if Hash(goodKey) == Hash(Generate()) {
		t.Fatal("two keys share a hash")
	}
}

func TestFromHeaders(t *testing.T) {
	other := KeyPrefix + strings.Repeat("b", 32)
	cases := []struct {
		name   string
		api    string
		auth   string
		want   string
		wantOK bool
	}{
		{name: "none"},
		{name: "x-api-key", api: goodKey, want: goodKey, wantOK: true},
		{name: "bearer", auth: "Bearer " + goodKey, want: goodKey, wantOK: true},
		{name: "bearer lower-case scheme", auth: "bearer " + goodKey, want: goodKey, wantOK: true},
		{name: "both ours: bearer wins", api: other, auth: "Bearer " + goodKey, want: goodKey, wantOK: true},
		{name: "foreign bearer: x-api-key wins", api: goodKey, auth: "Bearer sk-ant-oat01-xyz", want: goodKey, wantOK: true},
		{name: "foreign x-api-key: bearer wins", api: "sk-ant-api03-xyz", auth: "Bearer " + goodKey, want: goodKey, wantOK: true},
		{name: "only a foreign value is still returned", api: "garbage", want: "garbage", wantOK: true},
		{name: "basic auth is not a key", auth: "Basic dXNlcjpwYXNz"},
		{name: "empty bearer", auth: "Bearer "},
		{name: "spaces trimmed", api: "  " + goodKey + " ", want: goodKey, wantOK: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.api != "" {
				h.Set("x-api-key", c.api)
			}
			if c.auth != "" {
				h.Set("Authorization", c.auth)
			}
			got, ok := FromHeaders(h)
			if got != c.want || ok != c.wantOK {
				t.Fatalf("FromHeaders = %q, %v; want %q, %v", got, ok, c.want, c.wantOK)
			}
		})
	}
}

func FuzzCheckFormat(f *testing.F) {
	for _, s := range []string{
		goodKey, "", KeyPrefix, KeyPrefix + strings.Repeat("a", 31) + "é",
		KeyPrefix + strings.Repeat("_", 32), "sk-cli-v1-" + strings.Repeat("Z", 33),
		strings.Repeat("\xff", KeyLen), "sk-ant-api03-abc",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckFormat(s)
		_ = Prefix(s)
		_ = ID(Hash(s))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("CheckFormat error %v does not wrap ErrFormat", err)
			}
			return
		}
		if len(s) != KeyLen || !strings.HasPrefix(s, KeyPrefix) {
			t.Fatalf("accepted %q: wrong length or prefix", s)
		}
		for _, c := range []byte(s[len(KeyPrefix):]) {
			if !strings.ContainsRune(alphabet, rune(c)) {
				t.Fatalf("accepted %q: %q is not base62", s, c)
			}
		}
	})
}

func BenchmarkCheckFormat(b *testing.B) {
	for b.Loop() {
		if CheckFormat(goodKey) != nil {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		_ = Generate()
	}
}
