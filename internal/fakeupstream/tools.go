package fakeupstream

// Tool use and the content-block rules (images included) of the Messages API: what
// the OpenAI conversion (and any client using tools or images) needs the
// fake to check and to answer.

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ToolCall is one tool_use block of an answer.
type ToolCall struct {
	ID    string
	Name  string
	Input json.RawMessage
}

// Media types the API accepts for base64 images.
var imageMediaTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

type contentRules struct {
	System   json.RawMessage `json:"system"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name        string          `json:"name"`
		InputSchema json.RawMessage `json:"input_schema"`
	} `json:"tools"`
	ToolChoice *struct {
		Type                   string `json:"type"`
		Name                   string `json:"name"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
	} `json:"tool_choice"`
}

type ruleBlock struct {
	Type   string          `json:"type"`
	Text   *string         `json:"text"`
	ID     string          `json:"id"`
	Name   string          `json:"name"`
	Input  json.RawMessage `json:"input"`
	UseID  string          `json:"tool_use_id"`
	Source *struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type"`
		Data      string `json:"data"`
		URL       string `json:"url"`
	} `json:"source"`
	Content json.RawMessage `json:"content"`
}

// checkContent applies the API's rules for roles, content blocks, tools
// and tool_choice, with its wording. Block types it does not know pass.
func checkContent(body []byte) (contentRules, error) {
	var r contentRules
	if err := json.Unmarshal(body, &r); err != nil {
		return r, errors.New("There was an issue with your request body: " + err.Error())
	}
	if len(r.System) > 0 && string(r.System) != "null" {
		if err := checkSystem(r.System, "system"); err != nil {
			return r, err
		}
	}
	var prevToolUses map[string]bool
	for i, m := range r.Messages {
		if m.Role == "system" {
			// Between turns (handleMessages checks the beta): text only.
			if err := checkSystem(m.Content, fmt.Sprintf("messages.%d.content", i)); err != nil {
				return r, err
			}
			continue
		}
		if m.Role != "user" && m.Role != "assistant" {
			return r, fmt.Errorf("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			prevToolUses = nil
			continue
		}
		var bs []ruleBlock
		if json.Unmarshal(m.Content, &bs) != nil {
			return r, fmt.Errorf("messages.%d.content: Input should be a valid string or list", i)
		}
		uses := map[string]bool{}
		for j, b := range bs {
			p := fmt.Sprintf("messages.%d.content.%d", i, j)
			switch b.Type {
			case "text":
				if b.Text == nil || *b.Text == "" {
					return r, errors.New(p + ": text content blocks must be non-empty")
				}
			case "image":
				if err := checkImage(p, b); err != nil {
					return r, err
				}
			case "tool_use":
				if m.Role != "assistant" {
					return r, errors.New(p + ": tool_use blocks are only allowed in assistant messages")
				}
				var obj map[string]json.RawMessage
				if b.ID == "" || b.Name == "" || json.Unmarshal(b.Input, &obj) != nil || obj == nil {
					return r, errors.New(p + ": tool_use needs id, name and an input object")
				}
				uses[b.ID] = true
			case "tool_result":
				if m.Role != "user" {
					return r, errors.New(p + ": tool_result blocks are only allowed in user messages")
				}
				if !prevToolUses[b.UseID] {
					return r, fmt.Errorf("%s: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", p, b.UseID)
				}
			}
		}
		prevToolUses = uses
	}
	if len(r.Tools) == 0 && usesTools(r) {
		return r, errors.New("Requests which include `tool_use` or `tool_result` blocks must define tools.")
	}
	names := map[string]bool{}
	for i, t := range r.Tools {
		if !toolName.MatchString(t.Name) {
			return r, fmt.Errorf("tools.%d.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'", i)
		}
		var schema struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(t.InputSchema, &schema) != nil || schema.Type != "object" {
			return r, fmt.Errorf("tools.%d.input_schema: Input should be a JSON schema of type object", i)
		}
		names[t.Name] = true
	}
	if c := r.ToolChoice; c != nil {
		switch c.Type {
		case "auto", "any", "none":
		case "tool":
			if !names[c.Name] {
				return r, fmt.Errorf("tool_choice.name: tool %q is not in tools", c.Name)
			}
		default:
			return r, fmt.Errorf("tool_choice.type: Input tag '%s' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", c.Type)
		}
	}
	return r, nil
}

// usesTools reports whether any message carries a tool_use or tool_result
// block.
func usesTools(r contentRules) bool {
	for _, m := range r.Messages {
		var bs []ruleBlock
		if json.Unmarshal(m.Content, &bs) != nil {
			continue
		}
		for _, b := range bs {
			if b.Type == "tool_use" || b.Type == "tool_result" {
				return true
			}
		}
	}
	return false
}

// checkSystem: system text is a string or a list of text blocks.
func checkSystem(raw json.RawMessage, p string) error {
	var s string
	var bs []ruleBlock
	if json.Unmarshal(raw, &s) == nil {
		return nil
	}
	if json.Unmarshal(raw, &bs) != nil {
		return errors.New(p + ": Input should be a valid string or a list of text blocks")
	}
	for i, b := range bs {
		if b.Type != "text" || b.Text == nil {
			return fmt.Errorf("%s.%d: only text blocks are allowed", p, i)
		}
	}
	return nil
}

func checkImage(p string, b ruleBlock) error {
	if b.Source == nil {
		return errors.New(p + ".source: Field required")
	}
	switch b.Source.Type {
	case "base64":
		if !imageMediaTypes[b.Source.MediaType] {
			return fmt.Errorf("%s.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'", p)
		}
		if _, err := base64.StdEncoding.DecodeString(b.Source.Data); err != nil || b.Source.Data == "" {
			return errors.New(p + ".source.data: The image data is not valid base64")
		}
	case "url":
		if !strings.HasPrefix(b.Source.URL, "https://") {
			return errors.New(p + ".source.url: Only HTTPS URLs are supported")
		}
	default:
		return fmt.Errorf("%s.source.type: unknown source type %q", p, b.Source.Type)
	}
	return nil
}

// shape applies the tool and image rules of Reply to a text answer:
//
//   - when the last user message carries tool_result blocks, Text is
//     "Hello from the fake upstream. Tool said: " and the first 40
//     characters of the first result's text;
//   - otherwise, when the request has tools and tool_choice is not none,
//     the answer calls tools: the one tool_choice names, else every tool
//     whose name appears in the last user text, else the first; only one
//     when disable_parallel_tool_use. Text is "Calling <names>.", each
//     input sets the schema's first string property (or none) to the
//     first 40 characters of the user text, StopReason is "tool_use", and
//     OutputTokens is the words of Text plus 10 per call.
func shape(body []byte, r contentRules, ans Answer) Answer {
	if len(r.Messages) == 0 {
		return ans
	}
	last := r.Messages[len(r.Messages)-1]
	var bs []ruleBlock
	_ = json.Unmarshal(last.Content, &bs)
	if last.Role != "user" {
		return ans
	}
	userText := ""
	toolSaid, hasResult := "", false
	for _, b := range bs {
		switch b.Type {
		case "text":
			userText = *b.Text
		case "tool_result":
			if !hasResult {
				hasResult = true
				toolSaid = resultText(b.Content)
			}
		}
	}
	if len(bs) == 0 {
		_ = json.Unmarshal(last.Content, &userText)
	}
	switch {
	case hasResult:
		ans.Text = "Hello from the fake upstream. Tool said: " + truncateRunes(toolSaid, 40)
		ans.Usage.OutputTokens = len(strings.Fields(ans.Text))
	case len(r.Tools) > 0 && (r.ToolChoice == nil || r.ToolChoice.Type != "none"):
		var picked []int
		for i, t := range r.Tools {
			if r.ToolChoice != nil && r.ToolChoice.Type == "tool" {
				if t.Name == r.ToolChoice.Name {
					picked = append(picked, i)
				}
			} else if strings.Contains(userText, t.Name) {
				picked = append(picked, i)
			}
		}
		if len(picked) == 0 {
			picked = []int{0}
		}
		if r.ToolChoice != nil && r.ToolChoice.DisableParallelToolUse {
			picked = picked[:1]
		}
		sum := sha256.Sum256(body)
		var names []string
		ans.Tools = nil
		for k, i := range picked {
			t := r.Tools[i]
			input := map[string]string{}
			if prop := firstStringProperty(t.InputSchema); prop != "" {
				input[prop] = truncateRunes(userText, 40)
			}
			in, _ := json.Marshal(input)
			ans.Tools = append(ans.Tools, ToolCall{ID: fmt.Sprintf("toolu_%02d%s", k, hex.EncodeToString(sum[:10])), Name: t.Name, Input: in})
			names = append(names, t.Name)
		}
		ans.Text = "Calling " + strings.Join(names, ", ") + "."
		ans.StopReason = "tool_use"
		ans.Usage.OutputTokens = len(strings.Fields(ans.Text)) + 10*len(ans.Tools)
	}
	return ans
}

func resultText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var bs []ruleBlock
	_ = json.Unmarshal(raw, &bs)
	for _, b := range bs {
		if b.Type == "text" && b.Text != nil {
			return *b.Text
		}
	}
	return ""
}

// firstStringProperty is the alphabetically first string property of a
// JSON schema (map order is not the file's order).
func firstStringProperty(schema json.RawMessage) string {
	var s struct {
		Properties map[string]struct {
			Type string `json:"type"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(schema, &s)
	best := ""
	for name, p := range s.Properties {
		if p.Type == "string" && (best == "" || name < best) {
			best = name
		}
	}
	return best
}

// contentJSON is the answer's content blocks: the text, then tool calls.
func contentJSON(ans Answer) []any {
	var out []any
	if ans.Thinking != "" {
		out = append(out, map[string]string{"type": "thinking", "thinking": ans.Thinking, "signature": fakeSignature})
	}
	out = append(out, map[string]string{"type": "text", "text": ans.Text})
	for _, t := range ans.Tools {
		out = append(out, map[string]any{"type": "tool_use", "id": t.ID, "name": t.Name, "input": t.Input})
	}
	return out
}

// toolEvents streams the tool_use blocks after the text block (index 0):
// each input arrives as two input_json_delta fragments, as the API splits
// it at arbitrary points.
func toolEvents(ans Answer) []sseEvent {
	var evs []sseEvent
	for k, t := range ans.Tools {
		i := textIndex(ans) + k + 1
		in := string(t.Input)
		half := len(in) / 2
		evs = append(evs, sseEvent{"content_block_start", map[string]any{"type": "content_block_start", "index": i,
			"content_block": map[string]any{"type": "tool_use", "id": t.ID, "name": t.Name, "input": map[string]any{}}}})
		for _, frag := range []string{in[:half], in[half:]} {
			evs = append(evs, sseEvent{"content_block_delta", map[string]any{"type": "content_block_delta", "index": i,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": frag}}})
		}
		evs = append(evs, sseEvent{"content_block_stop", map[string]any{"type": "content_block_stop", "index": i}})
	}
	return evs
}
