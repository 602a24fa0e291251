package usage

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/internal/jsonscan"
)

const fullJSON = `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5",
"content":[{"type":"text","text":"Hi! \"usage\":{\"output_tokens\":999}"}],
"stop_reason":"end_turn","stop_sequence":null,
"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":40,"output_tokens":6}}`

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		want   Usage
		wantOK bool
	}{
		{"full response", fullJSON, Usage{InputTokens: 12, OutputTokens: 6, CacheCreationInputTokens: 3, CacheReadInputTokens: 40}, true},
		{"missing cache fields are zero", `{"type":"message","usage":{"input_tokens":1,"output_tokens":2}}`, Usage{InputTokens: 1, OutputTokens: 2}, true},
		{"error body has no usage", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}`, Usage{}, false},
		{"truncated body", fullJSON[:len(fullJSON)-1], Usage{}, false},
		{"usage null", `{"usage":null}`, Usage{}, false},
		{"usage wrong type", `{"usage":[1,2]}`, Usage{}, false},
		{"not JSON", `<html>bad gateway</html>`, Usage{}, false},
		{"empty", ``, Usage{}, false},
		{"bad counts are ignored, good ones kept", `{"usage":{"input_tokens":-1,"output_tokens":"5","cache_read_input_tokens":4}}`, Usage{CacheReadInputTokens: 4}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseJSON([]byte(tc.body))
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("ParseJSON = %+v, %v; want %+v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestJSONTap(t *testing.T) {
	body := []byte(fullJSON)
	want, _ := ParseJSON(body)
	tests := []struct {
		name   string
		max    int
		chunk  int
		wantOK bool
	}{
		{"fits in one write", len(body), len(body), true},
		{"fits in many writes", len(body), 7, true},
		{"one byte over the limit", len(body) - 1, 7, false},
		{"over the limit in one write", 10, len(body), false},
		{"zero limit", 0, len(body), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tap := NewJSONTap(tc.max)
			for b := body; len(b) > 0; {
				n := min(tc.chunk, len(b))
				if w, err := tap.Write(b[:n]); w != n || err != nil {
					t.Fatalf("Write = %d, %v", w, err)
				}
				b = b[n:]
			}
			got, ok := tap.Usage()
			if ok != tc.wantOK || (ok && got != want) || (!ok && got != (Usage{})) {
				t.Fatalf("Usage = %+v, %v; want ok=%v (%+v)", got, ok, tc.wantOK, want)
			}
			if len(tap.buf) > tc.max {
				t.Fatalf("tap holds %d bytes, limit %d", len(tap.buf), tc.max)
			}
		})
	}
}

// A body cut short by the upstream (connection lost) gives no usage.
func TestJSONTapTruncatedBody(t *testing.T) {
	tap := NewJSONTap(1 << 20)
	_, _ = tap.Write([]byte(fullJSON[:len(fullJSON)/2]))
	if u, ok := tap.Usage(); ok {
		t.Fatalf("usage %+v from half a body", u)
	}
}

// Cache writes are split by TTL when usage.cache_creation says so: the 1-hour
// part is priced at 2 × input, so it must reach the totals; the aggregate
// counts only when the split is absent.
func TestParseJSONCacheCreationSplit(t *testing.T) {
	tests := []struct {
		name  string
		usage string
		want  Usage
	}{
		{"split present", `{"input_tokens":5,"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20},"output_tokens":1}`,
			Usage{InputTokens: 5, OutputTokens: 1, CacheCreationInputTokens: 30, CacheCreation1hInputTokens: 20}},
		{"only 1h in the split", `{"cache_creation_input_tokens":9,"cache_creation":{"ephemeral_1h_input_tokens":9}}`,
			Usage{CacheCreationInputTokens: 9, CacheCreation1hInputTokens: 9}},
		{"split wins over a disagreeing aggregate", `{"cache_creation_input_tokens":100,"cache_creation":{"ephemeral_5m_input_tokens":1,"ephemeral_1h_input_tokens":2}}`,
			Usage{CacheCreationInputTokens: 3, CacheCreation1hInputTokens: 2}},
		{"aggregate alone is 5-minute", `{"cache_creation_input_tokens":12}`, Usage{CacheCreationInputTokens: 12}},
		{"empty or odd split falls back to the aggregate", `{"cache_creation_input_tokens":12,"cache_creation":{"ephemeral_1h_input_tokens":"x"}}`, Usage{CacheCreationInputTokens: 12}},
		{"split not an object", `{"cache_creation_input_tokens":12,"cache_creation":[1]}`, Usage{CacheCreationInputTokens: 12}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseJSON([]byte(`{"type":"message","usage":` + tc.usage + `}`))
			if !ok || got != tc.want {
				t.Fatalf("ParseJSON = %+v, %v; want %+v", got, ok, tc.want)
			}
		})
	}
}

func TestUsageTotal(t *testing.T) {
	tests := []struct {
		u    Usage
		want int64
	}{
		{Usage{}, 0},
		{Usage{1, 2, 3, 4, 0}, 10},
		{Usage{math.MaxInt64, 1, 0, 0, 0}, math.MaxInt64},
		{Usage{math.MaxInt64 - 1, 1, 0, 0, 0}, math.MaxInt64},
	}
	for _, tc := range tests {
		if got := tc.u.Total(); got != tc.want {
			t.Errorf("%+v.Total() = %d, want %d", tc.u, got, tc.want)
		}
	}
}

// decodeUsage reads what json.Unmarshal into wireUsage reads, for every
// valid object whose keys are spelled exactly once (encoding/json also
// matches other cases and keeps the last of duplicates; the API sends
// neither).
func FuzzDecodeUsage(f *testing.F) {
	for _, s := range []string{
		`{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":40,"output_tokens":6}`,
		`{"output_tokens":"5","input_tokens":-1,"x":{"input_tokens":9}}`, `{"input_tokens":1e3}`, `{}`, `null`, `[1]`,
		`{"input_tokens":12.5,"output_tokens":null}`,
		`{"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20}}`,
		`{"cache_creation":null}`, `{"cache_creation":{"ephemeral_1h_input_tokens":"7"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !jsonscan.Valid(b) || foldedOrRepeated(b) {
			return
		}
		var want *wireUsage
		if json.Unmarshal(b, &want) != nil {
			return
		}
		got, ok := decodeUsage(b)
		if ok != (want != nil) || (ok && got != *want) {
			t.Fatalf("decodeUsage(%q) = %+v, %v; json.Unmarshal %+v", b, got, ok, want)
		}
	})
}

// foldedOrRepeated: b names a usage field in another case, escaped, or
// twice (decodeUsage reads exact names, as the API sends them; json.Unmarshal
// folds case). The cache_creation object's names count as usage fields too.
func foldedOrRepeated(b []byte) bool {
	low := strings.ToLower(string(b))
	if strings.Contains(string(b), `\`) {
		return true
	}
	for _, k := range []string{"input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
		"cache_creation", "ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"} {
		if strings.Count(low, `"`+k+`"`) != strings.Count(string(b), `"`+k+`"`) || strings.Count(string(b), `"`+k+`"`) > 1 {
			return true
		}
	}
	return false
}
