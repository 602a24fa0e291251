package jsonscan

// maxDepth is encoding/json's nesting limit: deeper input is invalid there,
// so it is invalid here.
const maxDepth = 10000

// Valid reports whether b is one JSON value, exactly as json.Valid
// does (FuzzValidJSON holds them equal), at several times its speed:
// json.Valid drives a state machine through a function call per byte, and
// it was the largest cost of reading a request body. Like json.Valid it
// does not check UTF-8 (ScanBody does that first).
func Valid(b []byte) bool { return valid(b, nil) }

// Member is one member of a top-level object: its raw key (quotes and
// escapes as sent), its raw value and where the value starts in the
// document.
type Member func(key, val []byte, at int)

// ValidObject is Valid, and when b is an object it calls each for every
// member of its top level, in order, as the one pass goes: reading a
// body's few top-level fields costs no second pass over it. each may be
// called before a later byte proves b invalid; the caller acts only on a
// true result.
func ValidObject(b []byte, each Member) bool { return valid(b, each) }

// ValidField is Valid, and the raw value of key in the top level of the
// object b (matched as Field matches it: the first, byte for byte), from
// the same pass; nil when b is not an object or has no such member.
func ValidField(b []byte, key string) (val []byte, ok bool) {
	ok = valid(b, func(k, v []byte, _ int) {
		if val == nil && len(k) == len(key)+2 && string(k[1:len(k)-1]) == key {
			val = v
		}
	})
	return val, ok
}

func valid(b []byte, each Member) bool {
	// stack holds, per open container, '{' or '['.
	var stackBuf [64]byte
	stack := stackBuf[:0]
	// key and val locate the top-level member being read (each only).
	var key [2]int
	val := 0
	i := SkipWS(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) >= maxDepth {
				return false
			}
			stack = append(stack, c)
			i = SkipWS(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				stack = stack[:len(stack)-1]
				i++
				break
			}
			if c == '{' {
				k := i
				if i = objectKey(b, i); i < 0 {
					return false
				}
				if each != nil && len(stack) == 1 {
					key, val = [2]int{k, keyEnd(b, i)}, i
				}
			}
			continue
		case c == '"':
			if i = stringEnd(b, i); i < 0 {
				return false
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if i = numberEnd(b, i); i < 0 {
				return false
			}
		case c == 't':
			if !hasLiteral(b, i, "true") {
				return false
			}
			i += 4
		case c == 'f':
			if !hasLiteral(b, i, "false") {
				return false
			}
			i += 5
		case c == 'n':
			if !hasLiteral(b, i, "null") {
				return false
			}
			i += 4
		default:
			return false
		}
		// A value ended at i: close containers, or go on to the next value.
		if each != nil && len(stack) == 1 && stack[0] == '{' {
			each(b[key[0]:key[1]], b[val:i], val)
		}
		for {
			i = SkipWS(b, i)
			if len(stack) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := stack[len(stack)-1]
			if b[i] == top+2 {
				stack = stack[:len(stack)-1]
				i++
				if each != nil && len(stack) == 1 && stack[0] == '{' {
					each(b[key[0]:key[1]], b[val:i], val) // a container member ended
				}
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = SkipWS(b, i+1)
			if top == '{' {
				k := i
				if i = objectKey(b, i); i < 0 {
					return false
				}
				if each != nil && len(stack) == 1 {
					key, val = [2]int{k, keyEnd(b, i)}, i
				}
			}
			break
		}
	}
}

// keyEnd returns the end of the key string whose member's value starts at
// v: back over the blanks, the colon and the blanks before it.
func keyEnd(b []byte, v int) int {
	for v--; b[v] != ':'; v-- {
	}
	for v--; b[v] != '"'; v-- {
	}
	return v + 1
}

// objectKey reads `"key" :` at i and returns where the value starts, or -1.
func objectKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = stringEnd(b, i); i < 0 {
		return -1
	}
	i = SkipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return SkipWS(b, i+1)
}

// stringEnd returns the index after the string starting at i, or -1.
func stringEnd(b []byte, i int) int {
	for i++; ; i++ {
		if i = nextSpecial(b, i); i >= len(b) {
			return -1
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		default: // '\\'
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// numberEnd returns the index after the number starting at i, or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}
