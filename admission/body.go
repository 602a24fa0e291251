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
	if !utf8.Valid(b) {
		return Fields{}, bodyErr("The request body is not valid UTF-8")
	}
	// One pass validates the body and hands over its top-level members.
	var s bodyScan
	if !jsonscan.ValidObject(b, s.member) {
		return Fields{}, bodyErr("The request body is not valid JSON: %s", syntaxText(b))
	}
	if b[jsonscan.SkipWS(b, 0)] != '{' {
		return Fields{}, bodyErr("The request body is not valid JSON: expected a JSON object")
	}
	if s.err != nil {
		return Fields{}, s.err
	}
	f := s.f
	if !s.seen || len(s.model) == 0 || s.model[0] != '"' {
		return f, bodyErr("model: Field required (a model name string)")
	}
	name, err := keyText(s.model)
	if f.Model = string(name); err != nil || strings.TrimSpace(f.Model) == "" {
		return f, bodyErr("model: Field required (a model name string)")
	}
	return f, nil
}

// bodyScan reads the members ScanBody cares about; the first refusal wins.
type bodyScan struct {
	f     Fields
	model []byte
	seen  bool
	err   error
}

func (s *bodyScan) member(rawKey, val []byte, at int) {
	if s.err != nil {
		return
	}
	key, err := keyText(rawKey)
	if err != nil {
		s.err = bodyErr("The request body is not valid JSON: %v", err)
		return
	}
	switch {
	case string(key) == "model":
		if s.seen {
			s.err = bodyErr("model: the field appears more than once; send it once")
			return
		}
		s.seen, s.model = true, val
		s.f.ModelAt = [2]int{at, at + len(val)}
	case bytes.EqualFold(key, modelName):
		// EqualFold is the folding encoding/json matches field names with.
		s.err = bodyErr("model: the body carries %q, a case variant of \"model\"; send the field once, spelled model", key)
	case string(key) == "stream":
		// The last one wins, as in every JSON reader the upstream may use.
		switch string(val) {
		case "true":
			s.f.Stream = true
		case "false", "null":
			s.f.Stream = false
		default:
			s.err = bodyErr("stream: Input should be a valid boolean")
		}
	}
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
