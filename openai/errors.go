package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Error is a refusal in OpenAI's error shape. Status is the HTTP status;
// OpenAI's SDKs choose their typed error (AuthenticationError,
// RateLimitError, …) from it, so the statuses are the Anthropic path's.
type Error struct {
	Status  int
	Message string
	Type    string
	Code    string // "" is sent as null
	Param   string // "" is sent as null
}

func (e *Error) Error() string { return e.Message }

// badRequest is a 400 naming the offending parameter.
func badRequest(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param,
		Message: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// JSON is the error's body: {"error":{"message","type","param","code"}}.
func (e *Error) JSON() []byte {
	return marshal(errorBody{Error: errorDetail{Message: e.Message, Type: e.Type, Param: nullable(e.Param), Code: nullable(e.Code)}})
}

// codes maps Anthropic's error types to the codes OpenAI clients know
// where one exists; the type itself is kept, as it already reads the same
// way (invalid_request_error, rate_limit_error, …).
var codes = map[string]string{
	"authentication_error": "invalid_api_key",
	"permission_error":     "permission_denied",
	"not_found_error":      "not_found",
	"request_too_large":    "request_too_large",
	"rate_limit_error":     "rate_limit_exceeded",
	"overloaded_error":     "overloaded",
	"api_error":            "server_error",
	"timeout_error":        "timeout",
	"billing_error":        "insufficient_quota",
}

// FromAnthropic converts an Anthropic error answer (the proxy's own or the
// upstream's) into OpenAI's shape with the same status and message. A body
// that is not Anthropic's error JSON keeps its text as the message.
func FromAnthropic(status int, body []byte) *Error {
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	typ, msg := "", ""
	if json.Unmarshal(body, &e) == nil {
		typ, msg = e.Error.Type, e.Error.Message
	}
	if typ == "" {
		typ = typeForStatus(status)
	}
	if msg == "" {
		msg = strings.TrimSpace(string(bytes.ToValidUTF8(body, nil)))
		if len(msg) > 512 {
			msg = msg[:512]
		}
		if msg == "" {
			msg = http.StatusText(status)
		}
	}
	return &Error{Status: status, Type: typ, Code: codes[typ], Message: msg}
}

func typeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == 529 || status == http.StatusServiceUnavailable:
		return "overloaded_error"
	case status >= 500:
		return "api_error"
	default:
		return "invalid_request_error"
	}
}

// marshal encodes without HTML escaping: the bytes go to API clients, not
// into a web page, and prompts full of "<" should stay readable.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only the package's own types are encoded: a failure is a bug.
		panic(fmt.Sprintf("openai: encode %T: %v", v, err))
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}
