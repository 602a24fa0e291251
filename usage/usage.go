// Package usage reads token usage out of Anthropic Messages responses and
// keeps per-key, per-account and overall totals in Redis.
//
// The readers are taps: the proxy copies the upstream response to the client
// as it arrives and hands the same bytes to a tap (io.MultiWriter or a direct
// Write call). A tap never fails, never delays the stream and never keeps a
// reference to the caller's buffer, so it cannot affect what the client sees.
package usage

import (
	"math"
	"strconv"

	"github.com/claude-route/claude-route/internal/jsonscan"
)

// MaxCount bounds a single token count read from the upstream. A value above
// it (or negative, or not an integer) is treated as absent: an account's
// baseURL may name any Anthropic-compatible server, and one bogus number
// must not poison lifetime totals or overflow a Redis counter.
const MaxCount = 1_000_000_000_000

// Usage is the token usage of one Messages response.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	// CacheCreation1hInputTokens is the part of CacheCreationInputTokens
	// written with the 1-hour TTL (usage.cache_creation.ephemeral_1h_input_tokens),
	// priced at 2 × input instead of the 5-minute 1.25 ×. It is not added
	// again by Total.
	CacheCreation1hInputTokens int64 `json:"cache_creation_1h_input_tokens"`
}

// Total is the sum of all four counts, saturating instead of overflowing.
func (u Usage) Total() int64 {
	var t int64
	for _, v := range [...]int64{u.InputTokens, u.OutputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens} {
		if v > 0 && t > math.MaxInt64-v {
			return math.MaxInt64
		}
		t += v
	}
	return t
}

// wireUsage is the "usage" object as the API sends it. Each field records
// whether it was present, because message_delta overwrites only the fields
// it carries.
type wireUsage struct {
	InputTokens              count `json:"input_tokens"`
	OutputTokens             count `json:"output_tokens"`
	CacheCreationInputTokens count `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     count `json:"cache_read_input_tokens"`
	// CacheCreation is the split of cache writes by TTL; when it is
	// present it is the bill's truth and the aggregate above is its sum.
	CacheCreation cacheSplit `json:"cache_creation"`
}

// cacheSplit is usage.cache_creation.
type cacheSplit struct {
	Ephemeral5m count `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h count `json:"ephemeral_1h_input_tokens"`
}

// applyTo overwrites the fields of u that w carries.
func (w *wireUsage) applyTo(u *Usage) {
	w.InputTokens.set(&u.InputTokens)
	w.OutputTokens.set(&u.OutputTokens)
	w.CacheCreationInputTokens.set(&u.CacheCreationInputTokens)
	w.CacheReadInputTokens.set(&u.CacheReadInputTokens)
	if cc := w.CacheCreation; cc.Ephemeral5m.ok || cc.Ephemeral1h.ok {
		// The split prices what was written; the aggregate is used only
		// when the split is absent.
		u.CacheCreationInputTokens = cc.Ephemeral5m.v + cc.Ephemeral1h.v
		u.CacheCreation1hInputTokens = cc.Ephemeral1h.v
	}
}

// count is a token count that may be absent. Its decoder never fails: a
// malformed count is simply absent, so one odd field does not discard the
// rest of the usage object.
type count struct {
	v  int64
	ok bool
}

func (c *count) set(dst *int64) {
	if c.ok {
		*dst = c.v
	}
}

func (c *count) UnmarshalJSON(b []byte) error {
	*c = count{}
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return nil // null, string, object…: not a count
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		// Accept integral floats such as 12.0 or 1e3, which some
		// compatible servers emit.
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f != math.Trunc(f) || f < 0 || f > MaxCount {
			return nil
		}
		v = int64(f)
	}
	if v < 0 || v > MaxCount {
		return nil
	}
	*c = count{v: v, ok: true}
	return nil
}

// ParseJSON reads the usage of a non-streaming Messages response. ok is
// false when the body is not valid JSON or carries no usage object (an error
// body, for instance).
func ParseJSON(body []byte) (Usage, bool) {
	// One pass validates the answer and finds its top-level usage.
	raw, ok := jsonscan.ValidField(body, "usage")
	if !ok { // truncated, or not JSON
		return Usage{}, false
	}
	return usageAt(raw)
}

// usageAt decodes a raw usage object. Only that object is decoded: the
// rest of an answer (its text, up to megabytes) is only validated and
// skipped, several times faster than unmarshalling it.
func usageAt(raw []byte) (Usage, bool) {
	w, ok := decodeUsage(raw)
	if !ok {
		return Usage{}, false
	}
	var u Usage
	w.applyTo(&u)
	return u, true
}

// decodeUsage reads a usage object field by field (jsonscan.Field, exact
// names), each count as count.UnmarshalJSON reads it: the reflection of
// json.Unmarshal was most of what reading a stream's usage cost. ok is
// false when raw is not an object (absent, null, a list…). raw comes from
// a document jsonscan.Valid accepted.
func decodeUsage(raw []byte) (w wireUsage, ok bool) {
	i := jsonscan.SkipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return w, false
	}
	for _, f := range [...]struct {
		key string
		c   *count
	}{
		{"input_tokens", &w.InputTokens},
		{"output_tokens", &w.OutputTokens},
		{"cache_creation_input_tokens", &w.CacheCreationInputTokens},
		{"cache_read_input_tokens", &w.CacheReadInputTokens},
	} {
		if v := jsonscan.Field(raw, f.key); v != nil {
			_ = f.c.UnmarshalJSON(v)
		}
	}
	if cc := jsonscan.Field(raw, "cache_creation"); cc != nil {
		if j := jsonscan.SkipWS(cc, 0); j < len(cc) && cc[j] == '{' {
			if v := jsonscan.Field(cc, "ephemeral_5m_input_tokens"); v != nil {
				_ = w.CacheCreation.Ephemeral5m.UnmarshalJSON(v)
			}
			if v := jsonscan.Field(cc, "ephemeral_1h_input_tokens"); v != nil {
				_ = w.CacheCreation.Ephemeral1h.UnmarshalJSON(v)
			}
		}
	}
	return w, true
}
