package fakeupstream

// Request features the API takes only with their anthropic-beta: what
// current clients send (Claude Code's mid-conversation system messages,
// structured outputs) and what the fake must refuse without it.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// PerTurnControlBeta lets a conversation carry role "system" messages
// between its turns, as Claude Code 2.1 sends them (environment notes,
// reminders).
const PerTurnControlBeta = "per-turn-control-2026-07-01"

// StructuredOutputsBeta enables output_format: the answer's text is JSON
// matching a schema.
const StructuredOutputsBeta = "structured-outputs-2025-11-13"

func betas(h http.Header) map[string]bool {
	out := map[string]bool{}
	for _, line := range h.Values("Anthropic-Beta") {
		for _, v := range strings.Split(line, ",") {
			out[strings.TrimSpace(v)] = true
		}
	}
	return out
}

// checkBetas refuses, with the API's wording, the features a request uses
// without their beta.
func checkBetas(h http.Header, body []byte) error {
	var probe struct {
		Messages []struct {
			Role string `json:"role"`
		} `json:"messages"`
		OutputFormat json.RawMessage `json:"output_format"`
	}
	if json.Unmarshal(body, &probe) != nil {
		return nil // Reply words the error
	}
	on := betas(h)
	for i, m := range probe.Messages {
		if m.Role == "system" && !on[PerTurnControlBeta] {
			return fmt.Errorf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
	}
	if len(probe.OutputFormat) > 0 && string(probe.OutputFormat) != "null" && !on[StructuredOutputsBeta] {
		return fmt.Errorf("output_format: Extra inputs are not permitted")
	}
	return nil
}

// structuredAnswer answers an output_format request: Text is a JSON
// instance of the schema (strings are the user's text, numbers 1, booleans
// true, arrays one element, enums their first value).
func structuredAnswer(body []byte, userText string, ans Answer) Answer {
	var req struct {
		OutputFormat *struct {
			Type   string          `json:"type"`
			Schema json.RawMessage `json:"schema"`
		} `json:"output_format"`
	}
	if json.Unmarshal(body, &req) != nil || req.OutputFormat == nil || req.OutputFormat.Type != "json_schema" {
		return ans
	}
	v := instance(req.OutputFormat.Schema, truncateRunes(userText, 40), 0)
	b, _ := json.Marshal(v)
	ans.Text, ans.Tools, ans.StopReason = string(b), nil, "end_turn"
	ans.Usage.OutputTokens = len(strings.Fields(ans.Text)) + 1
	return ans
}

func instance(raw json.RawMessage, text string, depth int) any {
	var s struct {
		Type       any                        `json:"type"`
		Enum       []any                      `json:"enum"`
		Properties map[string]json.RawMessage `json:"properties"`
		Items      json.RawMessage            `json:"items"`
	}
	if depth > 8 || json.Unmarshal(raw, &s) != nil {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	typ, _ := s.Type.(string)
	if list, ok := s.Type.([]any); ok && len(list) > 0 {
		typ, _ = list[0].(string)
	}
	switch typ {
	case "object":
		out := map[string]any{}
		names := make([]string, 0, len(s.Properties))
		for n := range s.Properties {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			out[n] = instance(s.Properties[n], text, depth+1)
		}
		return out
	case "array":
		return []any{instance(s.Items, text, depth+1)}
	case "string":
		return text
	case "integer", "number":
		return 1
	case "boolean":
		return true
	}
	return nil
}
