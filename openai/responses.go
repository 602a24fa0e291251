package openai

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// The Responses API (POST /v1/responses), stateless: a request converts
// to a Messages request, the answer to a response object or to the
// Responses stream's events. What is mapped, ignored and refused is listed
// in README.md ("Responses API").

// Responses parameters accepted and dropped: hints, OpenAI's own storage
// and caching, and options whose default is the only behaviour here.
var responsesIgnored = map[string]bool{
	"metadata": true, "prompt_cache_key": true, "service_tier": true, "truncation": true,
	"include": true, "stream_options": true, "max_tool_calls": true, "prompt_cache_retention": true,
	"client_metadata": true,
}

// Responses parameters that would need state this proxy does not keep.
var responsesStateful = map[string]func(json.RawMessage) bool{
	"previous_response_id": func(json.RawMessage) bool { return true },
	"conversation":         func(json.RawMessage) bool { return true },
	"prompt":               func(json.RawMessage) bool { return true },
	"background":           func(v json.RawMessage) bool { return string(v) == "true" },
	"store":                func(v json.RawMessage) bool { return string(v) == "true" },
}

// Responses parameters with no Messages equivalent, refused unless neutral.
var responsesUnsupported = map[string]func(json.RawMessage) bool{
	"top_logprobs": func(v json.RawMessage) bool { return isNumber(v, 0) },
}

var responsesMapped = map[string]bool{
	"model": true, "input": true, "instructions": true, "tools": true, "tool_choice": true,
	"max_output_tokens": true, "temperature": true, "top_p": true, "reasoning": true,
	"stream": true, "parallel_tool_calls": true, "text": true, "user": true, "safety_identifier": true,
}

// ConvertResponsesRequest turns a Responses API body into a Messages body.
// The request it returns converts its answer into a response object or
// the Responses stream.
func ConvertResponsesRequest(body []byte, opts RequestOptions) (Request, *Error) {
	fields, err := fieldsOf(body, checkResponsesParams)
	if err != nil {
		return Request{}, err
	}
	var out messagesRequest
	if out.Model, err = modelOf(fields, opts); err != nil {
		return Request{}, err
	}
	var system []string
	if v, ok := fields["instructions"]; ok {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return Request{}, badRequest("instructions", "instructions: must be a string")
		}
		if s != "" {
			system = append(system, s)
		}
	}
	more, turns, err := responsesInput(fields["input"])
	if err != nil {
		return Request{}, err
	}
	out.System, out.Messages = strings.Join(append(system, more...), "\n\n"), turns
	out.MaxTokens = opts.MaxTokens
	if out.MaxTokens <= 0 {
		out.MaxTokens = DefaultMaxTokens
	}
	_, limitGiven := fields["max_output_tokens"]
	if limitGiven {
		if out.MaxTokens, err = maxTokens(fields, out.MaxTokens, "max_output_tokens"); err != nil {
			return Request{}, err
		}
	}
	if err = sampling(fields, &out); err != nil {
		return Request{}, err
	}
	if out.Metadata, err = endUser(fields, "user", "safety_identifier"); err != nil {
		return Request{}, err
	}
	req := Request{responses: true}
	if v, ok := fields["stream"]; ok && json.Unmarshal(v, &req.Stream) != nil {
		return Request{}, badRequest("stream", "stream: must be a boolean")
	}
	out.Stream = req.Stream
	if out.Tools, out.ToolChoice, err = responsesTools(fields); err != nil {
		return Request{}, err
	}
	if v, ok := fields["text"]; ok {
		var text struct {
			Format json.RawMessage `json:"format"`
		}
		if json.Unmarshal(v, &text) != nil {
			return Request{}, badRequest("text", "text: must be an object")
		}
		if !isNull(text.Format) {
			if req.Beta, req.AnswerTool, err = applyFormat(&out, text.Format, "text.format"); err != nil {
				return Request{}, err
			}
		}
	}
	if out.Tools == nil {
		out.Tools, out.ToolChoice = historyTools(out.Messages)
	}
	if v, ok := fields["reasoning"]; ok {
		var r struct {
			Effort *string `json:"effort"`
		}
		if json.Unmarshal(v, &r) != nil {
			return Request{}, badRequest("reasoning", "reasoning: must be an object")
		}
		if r.Effort != nil {
			if err := applyEffort(&out, *r.Effort, "reasoning.effort", limitGiven, req.AnswerTool != ""); err != nil {
				return Request{}, err
			}
		}
	}
	return finish(req, out)
}

func checkResponsesParams(fields map[string]json.RawMessage) *Error {
	var unknown, refused, stateful []string
	for k, v := range fields {
		switch {
		case responsesMapped[k], responsesIgnored[k]:
		case responsesStateful[k] != nil:
			if responsesStateful[k](v) {
				stateful = append(stateful, k)
			}
		case responsesUnsupported[k] != nil:
			if !responsesUnsupported[k](v) {
				refused = append(refused, k)
			}
		default:
			unknown = append(unknown, k)
		}
	}
	for _, l := range [][]string{unknown, refused, stateful} {
		sort.Strings(l)
	}
	switch {
	case len(stateful) > 0:
		return badRequest(stateful[0], "Not supported: %s. This endpoint is stateless: it stores no responses, so send the whole conversation in input (and store: false or no store).",
			strings.Join(stateful, ", "))
	case len(refused) > 0:
		return badRequest(refused[0], "Unsupported parameter for Claude models: %s (see the proxy's README, \"Responses API\")", strings.Join(refused, ", "))
	case len(unknown) > 0:
		return badRequest(unknown[0], "Unrecognized request argument supplied: %s", strings.Join(unknown, ", "))
	}
	return nil
}

// inputItem is one element of input: a message (type "message", or no
// type with a role), a function call, its output, or a reasoning item.
type inputItem struct {
	Type    string          `json:"type"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	CallID  string          `json:"call_id"`
	Name    string          `json:"name"`
	Args    *string         `json:"arguments"`
	Output  json.RawMessage `json:"output"`
}

// inputPart is one element of a message's content.
type inputPart struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Refusal  string          `json:"refusal"`
	ImageURL *string         `json:"image_url"`
	FileID   json.RawMessage `json:"file_id"`
}

// responsesInput converts input into system texts and turns.
func responsesInput(raw json.RawMessage) ([]string, []turn, *Error) {
	if raw == nil {
		return nil, nil, badRequest("input", "input: field required")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, nil, badRequest("input", "input: must not be empty")
		}
		return nil, []turn{{Role: "user", Content: s}}, nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return nil, nil, badRequest("input", "input: must be a string or a list of items")
	}
	var system []string
	var tb turnBuilder
	for i, ri := range items {
		p := fmt.Sprintf("input[%d]", i)
		var it inputItem
		if err := json.Unmarshal(ri, &it); err != nil {
			return nil, nil, badRequest(p, "%s: must be an item object (%s)", p, jsonErr(err))
		}
		typ := it.Type
		if typ == "" && it.Role != "" {
			typ = "message"
		}
		switch typ {
		case "message":
			bs, err := inputMessage(it, p)
			if err != nil {
				return nil, nil, err
			}
			switch it.Role {
			case "system", "developer":
				for _, b := range bs {
					system = append(system, *b.Text)
				}
			case "user", "assistant":
				if len(bs) > 0 {
					tb.add(it.Role, bs)
				}
			default:
				return nil, nil, badRequest(p+".role", "%s.role: must be user, assistant, system or developer, got %q", p, it.Role)
			}
		case "function_call":
			if it.CallID == "" || !toolName.MatchString(it.Name) {
				return nil, nil, badRequest(p, "%s: a function_call needs call_id and name", p)
			}
			args := ""
			if it.Args != nil {
				args = *it.Args
			}
			input, err := arguments(args)
			if err != nil {
				return nil, nil, badRequest(p+".arguments", "%s.arguments: must be a JSON object encoded as a string", p)
			}
			tb.add("assistant", []block{{Type: "tool_use", ID: toolID(it.CallID), Name: it.Name, Input: input}})
		case "function_call_output":
			if it.CallID == "" {
				return nil, nil, badRequest(p+".call_id", "%s.call_id: required", p)
			}
			if !tb.answers(toolID(it.CallID)) {
				return nil, nil, badRequest(p+".call_id", "%s: a function_call_output must answer a function_call of the preceding assistant turn (no call %q)", p, it.CallID)
			}
			res := block{Type: "tool_result", ToolUseID: toolID(it.CallID)}
			text, err := callOutput(it.Output, p+".output")
			if err != nil {
				return nil, nil, err
			}
			if text != "" {
				res.Content = text
			}
			tb.add("user", []block{res})
		case "reasoning":
			// The model's earlier reasoning: Messages cannot take it back
			// without Anthropic's signature, and does not need it.
		case "item_reference":
			return nil, nil, badRequest(p+".type", "%s: item_reference needs stored items; this endpoint is stateless, send the item itself", p)
		default:
			return nil, nil, badRequest(p+".type", "%s: items of type %q are not supported (message, function_call, function_call_output and reasoning are)", p, it.Type)
		}
	}
	turns := tb.done()
	if len(turns) == 0 {
		return nil, nil, badRequest("input", "input: at least one user or assistant message is required")
	}
	return system, turns, nil
}

// toolID makes a call_id fit Messages' tool_use id pattern.
func toolID(id string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, id)
}

func inputMessage(it inputItem, p string) ([]block, *Error) {
	p += ".content"
	if isNull(it.Content) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(it.Content, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []block{textBlock(s)}, nil
	}
	var parts []inputPart
	if json.Unmarshal(it.Content, &parts) != nil {
		return nil, badRequest(p, "%s: must be a string or a list of content parts", p)
	}
	var out []block
	for j, pt := range parts {
		pp := fmt.Sprintf("%s[%d]", p, j)
		text := it.Role != "user"
		switch {
		case pt.Type == "input_text" || pt.Type == "output_text" || pt.Type == "text":
			if pt.Text != "" {
				out = append(out, textBlock(pt.Text))
			}
		case pt.Type == "refusal" && it.Role == "assistant":
			if pt.Refusal != "" {
				out = append(out, textBlock(pt.Refusal))
			}
		case pt.Type == "input_image" && !text:
			if pt.ImageURL == nil {
				return nil, badRequest(pp+".image_url", "%s: only images given by image_url are supported (no file_id)", pp)
			}
			src, err := imageFrom(*pt.ImageURL, pp+".image_url")
			if err != nil {
				return nil, err
			}
			out = append(out, block{Type: "image", Source: src})
		default:
			return nil, badRequest(pp+".type", "%s: parts of type %q are not supported in a %s message", pp, pt.Type, it.Role)
		}
	}
	return out, nil
}

// callOutput reads a function_call_output's output: a string or text parts.
func callOutput(raw json.RawMessage, p string) (string, *Error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []inputPart
	if json.Unmarshal(raw, &parts) != nil {
		return "", badRequest(p, "%s: must be a string or a list of text parts", p)
	}
	var texts []string
	for j, pt := range parts {
		if pt.Type != "input_text" && pt.Type != "output_text" {
			return "", badRequest(fmt.Sprintf("%s[%d].type", p, j), "%s[%d]: only text parts are supported here, got %q", p, j, pt.Type)
		}
		texts = append(texts, pt.Text)
	}
	return strings.Join(texts, "\n"), nil
}

// responsesTools maps tools (flat function tools), tool_choice and
// parallel_tool_calls.
func responsesTools(fields map[string]json.RawMessage) ([]tool, *toolChoice, *Error) {
	var tools []tool
	if v, ok := fields["tools"]; ok {
		var in []struct {
			Type        string          `json:"type"`
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		}
		if json.Unmarshal(v, &in) != nil {
			return nil, nil, badRequest("tools", "tools: must be a list of tools")
		}
		for i, t := range in {
			p := fmt.Sprintf("tools[%d]", i)
			if t.Type != "function" {
				// Hosted tools (web_search, file_search, …), namespaces
				// and custom tools have no Messages equivalent here; agents
				// such as Codex offer them by default, so they are left
				// out rather than refused: the model sees the function
				// tools.
				continue
			}
			var err *Error
			if tools, err = appendTool(tools, p, t.Name, t.Description, t.Parameters); err != nil {
				return nil, nil, err
			}
		}
	}
	choice, err := toolChoiceOf(fields, func(v json.RawMessage) string {
		var named struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		if json.Unmarshal(v, &named) != nil || named.Type != "function" {
			return ""
		}
		return named.Name
	}, `{"type":"function","name":…}`)
	if err != nil {
		return nil, nil, err
	}
	return finishTools(fields, tools, choice)
}
