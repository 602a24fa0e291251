// Package jsonscan reads JSON without decoding it: a validator equal to
// json.Valid at several times its speed, and the skips that let the request
// path find one field of a body (the model, the usage) without unmarshalling
// the rest.
package jsonscan

import "encoding/binary"

// SkipWS returns the index of the first non-blank byte at or after i.
func SkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// SkipString returns the index just past the string starting at b[i] ('"').
func SkipString(b []byte, i int) int {
	for i++; ; i++ {
		if i = nextSpecial(b, i); i >= len(b) {
			return i
		}
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// nextSpecial returns the index of the first byte at or after i that a
// string scan must look at ('"', '\\' or a control byte below 0x20), or
// len(b) (or i, when i is past it). Eight bytes are tested at once: a
// request body is mostly string content, and a byte at a time was most of
// what validating it cost. The word test is exact: a word passes only
// when none of its bytes is special.
func nextSpecial(b []byte, i int) int {
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		q, s := x^(ones*'"'), x^(ones*'\\')
		// (v-ones)&^v&highs is set for a zero byte of v; (x-ones*0x20)&^x
		// for a byte of x below 0x20.
		if ((q-ones)&^q|(s-ones)&^s|(x-ones*0x20)&^x)&highs != 0 {
			break
		}
		i += 8
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return i
}

// SkipValue returns the index just past the value starting at b[i]. b is
// valid JSON, so only strings and nesting need care.
func SkipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = SkipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}

// Field returns the raw value of key in the JSON object b (top level only,
// key matched byte for byte, escapes in keys not decoded), or nil when b is
// not an object or has no such key. b need not have been validated: on
// malformed input the result may be nil or garbage, never a panic, so
// callers decode it and treat an error as absence.
func Field(b []byte, key string) []byte {
	i := SkipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	i = SkipWS(b, i+1)
	for i < len(b) && b[i] == '"' {
		end := SkipString(b, i)
		k := b[min(i+1, len(b)):max(end-1, i+1)]
		i = SkipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil
		}
		i = SkipWS(b, i+1)
		if i >= len(b) {
			return nil
		}
		v := i
		i = SkipValue(b, i)
		if string(k) == key {
			return b[v:i]
		}
		i = SkipWS(b, i)
		if i < len(b) && b[i] == ',' {
			i = SkipWS(b, i+1)
		}
	}
	return nil
}
