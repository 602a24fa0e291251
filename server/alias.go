package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// errNoModel means the body has no top-level "model" string to replace.
var errNoModel = errors.New("no top-level model string")

// withModel returns body with its top-level "model" value replaced by
// model, every other byte as the client sent it. Aliases are the one place
// where the proxy changes a request, so the change is a splice of that one
// value, not a decode and re-encode that would reorder or reformat the rest.
func withModel(body []byte, model string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errNoModel
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("alias: %w", err)
		}
		key, _ := tok.(string)
		before := dec.InputOffset()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("alias: %w", err)
		}
		if key != "model" {
			continue
		}
		end := dec.InputOffset()
		// The value starts after the colon and any space that follow the key.
		start := before + int64(bytes.IndexByte(body[before:end], ':')) + 1
		for start < end && (body[start] == ' ' || body[start] == '\t' || body[start] == '\n' || body[start] == '\r') {
			start++
		}
		if len(raw) == 0 || raw[0] != '"' {
			return nil, errNoModel
		}
		val, _ := json.Marshal(model)
		out := make([]byte, 0, len(body)-int(end-start)+len(val))
		out = append(out, body[:start]...)
		out = append(out, val...)
		return append(out, body[end:]...), nil
	}
	return nil, errNoModel
}

// resolveAlias sends an alias upstream as its real model; tier rules,
// quotas and logs then see the real model too.
func (s *Server) resolveAlias(req *request) {
	real := s.d.Tiers.Resolve(req.model)
	if real == req.model {
		return
	}
	if body, err := withModel(req.body, real); err == nil {
		req.body, req.model = body, real
	}
}
