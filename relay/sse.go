package relay

import "encoding/json"

type errorBody struct {
	Type  string      `json:"type"`
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// SSEError is the final event of a stream that failed after it started:
// the status line is long gone, so the error travels as an SSE event in
// Anthropic's error shape, which the SDKs raise.
func SSEError(typ, msg string) []byte {
	b, _ := json.Marshal(errorBody{Type: "error", Error: errorDetail{Type: typ, Message: msg}})
	return append(append([]byte("event: error\ndata: "), b...), '\n', '\n')
}
