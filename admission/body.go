// Package admission decides, in one call (Gate.Admit), whether a customer
// request may go upstream: its key, its place in the key's concurrency
// queue, its body (in the process-wide budget of request bytes in flight)
// and what the body asks for, the key's budget, its binding, its quota
// place and its account. What it takes is held by one Admission, which
// only Count, Refund and Release end. It knows nothing of HTTP; the server
// words its one Refusal into an answer.
package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/claude-route/claude-route/internal/jsonscan"
)

// Fields are the only parts of a Messages request body the proxy reads.
type Fields struct {
	Model  string
	Stream bool
	// ModelAt is where the model's JSON value lies in the body, [start,
	// end): an alias is replaced there and nowhere else.
	ModelAt [2]int
}

// BodyError is a body the proxy refuses (400 invalid_request_error); its
// text is written for the customer.
type BodyError struct{ Msg string }

func (e *BodyError) Error() string { return e.Msg }

func bodyErr(format string, args ...any) error {
	return &BodyError{Msg: fmt.Sprintf(format, args...)}
}

// ScanBody reads model and stream from a JSON object body exactly as the
// upstream reads them: by the exact, case-sensitive key. encoding/json
// matches struct fields case-insensitively and keeps the last match, so
// {"model":"a","Model":"b"} would let the proxy check "b" while the
// upstream serves "a"; a body that carries a case variant of "model", or
// "model" twice, is therefore refused rather than guessed at. Only the top
// level is scanned and only the two values are decoded; the rest of the
// body is validated, never unmarshalled.
func ScanBody(b []byte) (Fields, error) {
	var f Fields
	if !utf8.Valid(b) {
		return f, bodyErr("The request body is not valid UTF-8")
	}
	if !jsonscan.Valid(b) {
		return f, bodyErr("The request body is not valid JSON: %s", syntaxText(b))
	}
	i := jsonscan.SkipWS(b, 0)
	if b[i] != '{' {
		return f, bodyErr("The request body is not valid JSON: expected a JSON object")
	}
	i = jsonscan.SkipWS(b, i+1)
	var model []byte
	seen := false
	for b[i] != '}' {
		// json.Valid holds, so a key string, a colon and a value follow.
		end := jsonscan.SkipString(b, i)
		key, err := keyText(b[i:end])
		if err != nil {
			return f, bodyErr("The request body is not valid JSON: %v", err)
		}
		i = jsonscan.SkipWS(b, end)
		i = jsonscan.SkipWS(b, i+1) // the colon
		vstart := i
		i = jsonscan.SkipValue(b, i)
		val := b[vstart:i]
		switch {
		case string(key) == "model":
			if seen {
				return f, bodyErr("model: the field appears more than once; send it once")
			}
			seen, model = true, val
			f.ModelAt = [2]int{vstart, i}
		case bytes.EqualFold(key, modelName):
			// EqualFold is the folding encoding/json matches field names with.
			return f, bodyErr("model: the body carries %q, a case variant of \"model\"; send the field once, spelled model", key)
		case string(key) == "stream":
			// The last one wins, as in every JSON reader the upstream may use.
			switch string(val) {
			case "true":
				f.Stream = true
			case "false", "null":
				f.Stream = false
			default:
				return f, bodyErr("stream: Input should be a valid boolean")
			}
		}
		i = jsonscan.SkipWS(b, i)
		if b[i] == ',' {
			i = jsonscan.SkipWS(b, i+1)
		}
	}
	if !seen || len(model) == 0 || model[0] != '"' {
		return f, bodyErr("model: Field required (a model name string)")
	}
	name, err := keyText(model)
	if f.Model = string(name); err != nil || strings.TrimSpace(f.Model) == "" {
		return f, bodyErr("model: Field required (a model name string)")
	}
	return f, nil
}

// modelName is the field EqualFold compares keys with.
var modelName = []byte("model")

// syntaxText words why b is not JSON, with the offset (error path only).
func syntaxText(b []byte) string {
	var v json.RawMessage
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at offset %d", se.Error(), se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "invalid"
}

// keyText decodes a JSON string (a key, or the model's value) of a body
// jsonscan.Valid and utf8.Valid accepted. Escapes (\u0065) are rare: a
// string without one is its raw bytes, returned in place (no allocation;
// comparing them with string(x) == "model" converts nothing).
func keyText(raw []byte) ([]byte, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}
