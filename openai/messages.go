package openai

// Chat messages → Messages turns: roles, content parts, images, tool calls
// and their results.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// chatMessage is one OpenAI message.
type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []chatToolCall  `json:"tool_calls"`
	ToolCallID *string         `json:"tool_call_id"`
	// function_call and audio have no Messages equivalent in history.
	FunctionCall json.RawMessage `json:"function_call"`
	Audio        json.RawMessage `json:"audio"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// part is one element of an OpenAI content array.
type part struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Refusal  string `json:"refusal"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// convertMessages maps roles (system and developer into the system text;
// tool into tool_result blocks of a user turn) and merges consecutive
// turns of one role, which Messages requires to alternate.
func convertMessages(raw json.RawMessage) (string, []turn, *Error) {
	if raw == nil {
		return "", nil, badRequest("messages", "messages: field required")
	}
	var msgs []json.RawMessage
	if json.Unmarshal(raw, &msgs) != nil {
		return "", nil, badRequest("messages", "messages: must be a list of messages")
	}
	if len(msgs) == 0 {
		return "", nil, badRequest("messages", "messages: at least one message is required")
	}
	var system []string
	var tb turnBuilder
	add := tb.add
	for i, rm := range msgs {
		p := fmt.Sprintf("messages[%d]", i)
		var m chatMessage
		if err := json.Unmarshal(rm, &m); err != nil {
			return "", nil, badRequest(p, "%s: must be a message object (%s)", p, jsonErr(err))
		}
		if len(m.FunctionCall) > 0 && string(m.FunctionCall) != "null" {
			return "", nil, badRequest(p+".function_call", "%s.function_call: deprecated and not supported; use tool_calls", p)
		}
		if len(m.Audio) > 0 && string(m.Audio) != "null" {
			return "", nil, badRequest(p+".audio", "%s.audio: audio is not supported", p)
		}
		switch m.Role {
		case "system", "developer":
			texts, err := textParts(m.Content, p+".content")
			if err != nil {
				return "", nil, err
			}
			system = append(system, texts...)
		case "user":
			bs, err := userContent(m.Content, p+".content")
			if err != nil {
				return "", nil, err
			}
			if len(bs) == 0 {
				return "", nil, badRequest(p+".content", "%s.content: must not be empty", p)
			}
			add("user", bs)
		case "assistant":
			bs, err := assistantContent(m, p)
			if err != nil {
				return "", nil, err
			}
			if len(bs) > 0 { // an empty assistant turn says nothing
				add("assistant", bs)
			}
		case "tool":
			if m.ToolCallID == nil || *m.ToolCallID == "" {
				return "", nil, badRequest(p+".tool_call_id", "%s.tool_call_id: required for a tool message", p)
			}
			if !tb.answers(*m.ToolCallID) {
				return "", nil, badRequest(p+".tool_call_id", "%s: a tool message must answer a tool call of the preceding assistant message (no call %q)", p, *m.ToolCallID)
			}
			texts, err := textParts(m.Content, p+".content")
			if err != nil {
				return "", nil, err
			}
			res := block{Type: "tool_result", ToolUseID: *m.ToolCallID}
			if s := strings.Join(texts, "\n"); s != "" {
				res.Content = s
			}
			add("user", []block{res})
		case "function":
			return "", nil, badRequest(p+".role", "%s.role: \"function\" is deprecated and not supported; use \"tool\"", p)
		default:
			return "", nil, badRequest(p+".role", "%s.role: must be system, developer, user, assistant or tool, got %q", p, m.Role)
		}
	}
	turns := tb.done()
	if len(turns) == 0 {
		return "", nil, badRequest("messages", "messages: at least one user or assistant message is required")
	}
	return strings.Join(system, "\n\n"), turns, nil
}

// turnBuilder collects Messages turns, merging consecutive turns of one
// role, which Messages requires to alternate.
type turnBuilder struct {
	turns  []turn
	blocks [][]block // blocks of turns[i]
	// calls are the tool call ids of the latest assistant turn: the only
	// ones a tool result may answer, as in OpenAI's API and in Messages.
	calls map[string]bool
}

func (tb *turnBuilder) add(role string, bs []block) {
	if tb.calls == nil {
		tb.calls = map[string]bool{}
	}
	if n := len(tb.turns); n > 0 && tb.turns[n-1].Role == role {
		tb.blocks[n-1] = append(tb.blocks[n-1], bs...)
	} else {
		tb.turns = append(tb.turns, turn{Role: role})
		tb.blocks = append(tb.blocks, bs)
		if role == "assistant" {
			clear(tb.calls)
		}
	}
	for _, b := range bs {
		if b.Type == "tool_use" {
			tb.calls[b.ID] = true
		}
	}
}

// answers reports whether a tool result for id may follow.
func (tb *turnBuilder) answers(id string) bool { return tb.calls[id] }

// done returns the turns, a lone text block in its plain string form, as
// most clients send it.
func (tb *turnBuilder) done() []turn {
	for i := range tb.turns {
		bs := tb.blocks[i]
		if len(bs) == 1 && bs[0].Type == "text" {
			tb.turns[i].Content = *bs[0].Text
		} else {
			tb.turns[i].Content = bs
		}
	}
	return tb.turns
}

// textParts reads content that may only hold text: a string or text parts.
func textParts(raw json.RawMessage, p string) ([]string, *Error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	}
	var parts []part
	if json.Unmarshal(raw, &parts) != nil {
		return nil, badRequest(p, "%s: must be a string or a list of text parts", p)
	}
	var out []string
	for j, pt := range parts {
		if pt.Type != "text" {
			return nil, badRequest(fmt.Sprintf("%s[%d].type", p, j), "%s[%d]: only text parts are allowed here, got %q", p, j, pt.Type)
		}
		if pt.Text != "" {
			out = append(out, pt.Text)
		}
	}
	return out, nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func userContent(raw json.RawMessage, p string) ([]block, *Error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []block{textBlock(s)}, nil
	}
	var parts []part
	if json.Unmarshal(raw, &parts) != nil {
		return nil, badRequest(p, "%s: must be a string or a list of content parts", p)
	}
	var out []block
	for j, pt := range parts {
		pp := fmt.Sprintf("%s[%d]", p, j)
		switch pt.Type {
		case "text":
			if pt.Text != "" {
				out = append(out, textBlock(pt.Text))
			}
		case "image_url":
			if pt.ImageURL == nil {
				return nil, badRequest(pp+".image_url", "%s.image_url: required for an image_url part", pp)
			}
			src, err := imageFrom(pt.ImageURL.URL, pp+".image_url.url")
			if err != nil {
				return nil, err
			}
			out = append(out, block{Type: "image", Source: src})
		default:
			return nil, badRequest(pp+".type", "%s: content parts of type %q are not supported (text and image_url are)", pp, pt.Type)
		}
	}
	return out, nil
}

// Media types the Messages API accepts for images.
var imageTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// imageFrom maps an image_url: a base64 data: URL keeps its media type and
// data; an https URL becomes a URL source the upstream fetches.
func imageFrom(u, p string) (*imageSource, *Error) {
	if rest, ok := cutPrefixFold(u, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mt, b64 := strings.CutSuffix(meta, ";base64")
		if !ok || !b64 {
			return nil, badRequest(p, "%s: a data: URL must be base64 encoded (data:image/png;base64,…)", p)
		}
		mt = strings.ToLower(strings.TrimSpace(mt))
		if !imageTypes[mt] {
			return nil, badRequest(p, "%s: image type %q is not supported (image/jpeg, image/png, image/gif, image/webp are)", p, mt)
		}
		if _, err := base64.StdEncoding.DecodeString(data); err != nil || data == "" {
			return nil, badRequest(p, "%s: the data: URL does not hold valid base64 data", p)
		}
		return &imageSource{Type: "base64", MediaType: mt, Data: data}, nil
	}
	if _, ok := cutPrefixFold(u, "https://"); ok && len(u) > len("https://") {
		return &imageSource{Type: "url", URL: u}, nil
	}
	return nil, badRequest(p, "%s: must be a data: URL or an https URL", p)
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func assistantContent(m chatMessage, p string) ([]block, *Error) {
	var out []block
	if !isNull(m.Content) {
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			if s != "" {
				out = append(out, textBlock(s))
			}
		} else {
			var parts []part
			if json.Unmarshal(m.Content, &parts) != nil {
				return nil, badRequest(p+".content", "%s.content: must be a string or a list of text parts", p)
			}
			for j, pt := range parts {
				switch pt.Type {
				case "text":
					if pt.Text != "" {
						out = append(out, textBlock(pt.Text))
					}
				case "refusal":
					if pt.Refusal != "" {
						out = append(out, textBlock(pt.Refusal))
					}
				default:
					return nil, badRequest(fmt.Sprintf("%s.content[%d].type", p, j), "%s.content[%d]: only text and refusal parts are allowed, got %q", p, j, pt.Type)
				}
			}
		}
	}
	for j, tc := range m.ToolCalls {
		tp := fmt.Sprintf("%s.tool_calls[%d]", p, j)
		if tc.Type != "" && tc.Type != "function" {
			return nil, badRequest(tp+".type", "%s.type: only function tool calls are supported, got %q", tp, tc.Type)
		}
		if tc.ID == "" || tc.Function.Name == "" {
			return nil, badRequest(tp, "%s: id and function.name are required", tp)
		}
		if !toolName.MatchString(tc.Function.Name) {
			return nil, badRequest(tp+".function.name", "%s.function.name: must be 1 to 64 letters, digits, _ or -", tp)
		}
		input, err := arguments(tc.Function.Arguments)
		if err != nil {
			return nil, badRequest(tp+".function.arguments", "%s.function.arguments: must be a JSON object encoded as a string", tp)
		}
		out = append(out, block{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
	}
	return out, nil
}

// arguments turns a tool call's JSON-string arguments into the input
// object Messages wants; an empty string is an empty object.
func arguments(s string) (json.RawMessage, error) {
	if strings.TrimSpace(s) == "" {
		return json.RawMessage("{}"), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
