package server

import "encoding/json"

// withModel returns body with the model value at at (admission.Fields's
// ModelAt) replaced by model, every other byte as the client sent it.
// Aliases are the one place where the proxy changes a request, so the
// change is a splice of that one value, not a decode and re-encode that
// would reorder or reformat the rest.
func withModel(body []byte, at [2]int, model string) []byte {
	val, _ := json.Marshal(model)
	out := make([]byte, 0, len(body)-(at[1]-at[0])+len(val))
	out = append(out, body[:at[0]]...)
	out = append(out, val...)
	return append(out, body[at[1]:]...)
}

// resolveAlias sends an alias upstream as its real model; tier rules,
// quotas and logs then see the real model too.
func (s *Server) resolveAlias(req *request) {
	if real := s.d.Tiers.Resolve(req.model); real != req.model {
		req.body, req.model = withModel(req.body, req.modelAt, real), real
	}
}
