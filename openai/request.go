// Package openai converts between OpenAI's chat.completions API and
// Anthropic's Messages API: requests one way, answers (JSON and SSE
// streams) and errors the other. It is pure conversion: no network, no
// store, no clock of its own; the server feeds it bytes and a time.
//
// What is mapped, what is ignored as an optional hint and what is refused
// with a 400 is listed in README.md ("OpenAI-compatible clients").
package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// DefaultMaxTokens is sent when the client gives neither max_tokens nor
// max_completion_tokens: Messages requires one, and every current model
// can produce at least this many.
const DefaultMaxTokens = 4096

// RequestOptions tune ConvertRequest.
type RequestOptions struct {
	// MaxTokens replaces DefaultMaxTokens when positive.
	MaxTokens int
	// Model maps the client's model name to the one sent upstream (model
	// aliases); nil sends it as given.
	Model func(string) string
}

// Request is a converted request.
type Request struct {
	// Body is the Messages request body.
	Body []byte
	// Model is the model sent upstream (after Options.Model).
	Model string
	// Stream and IncludeUsage say how the answer must be converted.
	Stream       bool
	IncludeUsage bool
	// Beta is an anthropic-beta value the body needs ("" none): structured
	// outputs.
	Beta string
	// AnswerTool names the tool the answer was forced through (a JSON
	// answer on a model without structured outputs): its input is the
	// answer's text. "" when none.
	AnswerTool string
	// responses: the request came in on the Responses API, and so is
	// answered in its shapes.
	responses bool
}

// Parameters OpenAI documents as optional hints, or that only concern
// OpenAI's own storage: accepted and dropped.
var ignored = map[string]bool{
	"seed": true, "service_tier": true, "store": true, "metadata": true, "prediction": true,
	"prompt_cache_key": true, "safety_identifier": true,
}

// Parameters with no Messages equivalent: refused unless they carry their
// neutral value (a client that sends the default asked for nothing).
var unsupported = map[string]func(json.RawMessage) bool{
	"n":                  func(v json.RawMessage) bool { return isNumber(v, 1) },
	"logprobs":           func(v json.RawMessage) bool { return string(v) == "false" },
	"top_logprobs":       func(v json.RawMessage) bool { return isNumber(v, 0) },
	"presence_penalty":   func(v json.RawMessage) bool { return isNumber(v, 0) },
	"frequency_penalty":  func(v json.RawMessage) bool { return isNumber(v, 0) },
	"logit_bias":         func(v json.RawMessage) bool { return isEmptyObject(v) },
	"modalities":         func(v json.RawMessage) bool { return isTextOnly(v) },
	"audio":              func(json.RawMessage) bool { return false },
	"functions":          func(json.RawMessage) bool { return false },
	"function_call":      func(json.RawMessage) bool { return false },
	"verbosity":          func(json.RawMessage) bool { return false },
	"web_search_options": func(json.RawMessage) bool { return false },
}

// The parameters ConvertRequest maps.
var mapped = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "max_completion_tokens": true,
	"temperature": true, "top_p": true, "stop": true, "user": true, "stream": true,
	"stream_options": true, "tools": true, "tool_choice": true, "parallel_tool_calls": true,
	"reasoning_effort": true, "response_format": true,
}

// ConvertRequest turns a chat.completions body into a Messages body. A
// request that cannot be converted faithfully is an *Error with status 400
// naming the parameter, never a silently different request.
func ConvertRequest(body []byte, opts RequestOptions) (Request, *Error) {
	fields, err := fieldsOf(body, checkParams)
	if err != nil {
		return Request{}, err
	}
	var out messagesRequest
	if out.Model, err = modelOf(fields, opts); err != nil {
		return Request{}, err
	}
	if out.System, out.Messages, err = convertMessages(fields["messages"]); err != nil {
		return Request{}, err
	}
	if out.MaxTokens, err = maxTokens(fields, opts.MaxTokens, "max_completion_tokens", "max_tokens"); err != nil {
		return Request{}, err
	}
	if err = sampling(fields, &out); err != nil {
		return Request{}, err
	}
	if out.StopSequences, err = stops(fields["stop"]); err != nil {
		return Request{}, err
	}
	if out.Metadata, err = endUser(fields, "user"); err != nil {
		return Request{}, err
	}
	req := Request{}
	if v, ok := fields["stream"]; ok && json.Unmarshal(v, &req.Stream) != nil {
		return Request{}, badRequest("stream", "stream: must be a boolean")
	}
	out.Stream = req.Stream
	if v, ok := fields["stream_options"]; ok {
		var so struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if json.Unmarshal(v, &so) != nil {
			return Request{}, badRequest("stream_options", "stream_options: must be an object")
		}
		if !req.Stream {
			return Request{}, badRequest("stream_options", "stream_options: only allowed when stream is true")
		}
		req.IncludeUsage = so.IncludeUsage != nil && *so.IncludeUsage
	}
	if out.Tools, out.ToolChoice, err = convertTools(fields); err != nil {
		return Request{}, err
	}
	if req.Beta, req.AnswerTool, err = applyFormat(&out, fields["response_format"], "response_format"); err != nil {
		return Request{}, err
	}
	if out.Tools == nil {
		out.Tools, out.ToolChoice = historyTools(out.Messages)
	}
	if v, ok := fields["reasoning_effort"]; ok {
		var effort string
		if json.Unmarshal(v, &effort) != nil {
			return Request{}, badRequest("reasoning_effort", "reasoning_effort: must be a string")
		}
		_, limit := fields["max_tokens"]
		_, limit2 := fields["max_completion_tokens"]
		if err := applyEffort(&out, effort, "reasoning_effort", limit || limit2, req.AnswerTool != ""); err != nil {
			return Request{}, err
		}
	}
	return finish(req, out)
}

// checkParams refuses unknown and unmappable parameters, naming them all
// in a stable order so the client can fix every one at once.
func checkParams(fields map[string]json.RawMessage) *Error {
	var unknown, refused []string
	for k, v := range fields {
		switch {
		case mapped[k], ignored[k]:
		case unsupported[k] != nil:
			if !unsupported[k](v) {
				refused = append(refused, k)
			}
		default:
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	sort.Strings(refused)
	if len(refused) > 0 {
		return badRequest(refused[0], "Unsupported parameter for Claude models: %s (see the proxy's README, \"OpenAI-compatible clients\")",
			strings.Join(refused, ", "))
	}
	if len(unknown) > 0 {
		return badRequest(unknown[0], "Unrecognized request argument supplied: %s", strings.Join(unknown, ", "))
	}
	return nil
}

func isNumber(v json.RawMessage, want float64) bool {
	var f float64
	return json.Unmarshal(v, &f) == nil && f == want
}

func isEmptyObject(v json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(v, &m) == nil && len(m) == 0
}

func isTextOnly(v json.RawMessage) bool {
	var ms []string
	if json.Unmarshal(v, &ms) != nil {
		return false
	}
	for _, m := range ms {
		if m != "text" {
			return false
		}
	}
	return true
}

func jsonErr(err error) string {
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "got null"
	case errors.As(err, &te):
		return "got " + te.Value
	}
	return err.Error()
}

func str(fields map[string]json.RawMessage, name string, dst *string) *Error {
	v, ok := fields[name]
	if !ok {
		return badRequest(name, "%s: field required", name)
	}
	if json.Unmarshal(v, dst) != nil {
		return badRequest(name, "%s: must be a string", name)
	}
	return nil
}

// maxTokens reads the first of names that is given, else def.
func maxTokens(fields map[string]json.RawMessage, def int, names ...string) (int, *Error) {
	if def <= 0 {
		def = DefaultMaxTokens
	}
	for _, name := range names {
		v, ok := fields[name]
		if !ok {
			continue
		}
		var f float64
		if json.Unmarshal(v, &f) != nil || f != math.Trunc(f) || f < 1 || f > math.MaxInt32 {
			return 0, badRequest(name, "%s: must be an integer of at least 1", name)
		}
		return int(f), nil
	}
	return def, nil
}

// number checks a numeric parameter's range and keeps its exact text.
func number(fields map[string]json.RawMessage, name string, lo, hi float64, msg string) (json.RawMessage, *Error) {
	v, ok := fields[name]
	if !ok {
		return nil, nil
	}
	var f float64
	if json.Unmarshal(v, &f) != nil {
		return nil, badRequest(name, "%s: must be a number", name)
	}
	if f < lo || f > hi {
		return nil, badRequest(name, "%s (got %v)", msg, f)
	}
	var b bytes.Buffer
	_ = json.Compact(&b, v)
	return b.Bytes(), nil
}

func stops(v json.RawMessage) ([]string, *Error) {
	if v == nil {
		return nil, nil
	}
	// Messages refuses stop sequences made of whitespace only: they are
	// dropped, like empty ones.
	var one string
	if json.Unmarshal(v, &one) == nil {
		if strings.TrimSpace(one) == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(v, &many) != nil {
		return nil, badRequest("stop", "stop: must be a string or a list of strings")
	}
	out := many[:0]
	for _, s := range many {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// The Messages request, in the order the fields are written.
type messagesRequest struct {
	Model         string          `json:"model"`
	MaxTokens     int             `json:"max_tokens"`
	System        string          `json:"system,omitempty"`
	Messages      []turn          `json:"messages"`
	Metadata      *metadata       `json:"metadata,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
	Temperature   json.RawMessage `json:"temperature,omitempty"`
	TopP          json.RawMessage `json:"top_p,omitempty"`
	Tools         []tool          `json:"tools,omitempty"`
	ToolChoice    *toolChoice     `json:"tool_choice,omitempty"`
	Thinking      *thinking       `json:"thinking,omitempty"`
	OutputFormat  *outputFormat   `json:"output_format,omitempty"`
}

type metadata struct {
	UserID string `json:"user_id"`
}

// turn is one Messages message; Content is a string or []block.
type turn struct {
	Role    string `json:"role"`
	Content any    `json:"content"`
}

type block struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text,omitempty"`
	Source    *imageSource    `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   any             `json:"content,omitempty"` // tool_result: string or []block
}

type imageSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

func textBlock(s string) block { return block{Type: "text", Text: &s} }

type tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// convertTools maps tools, tool_choice and parallel_tool_calls.
func convertTools(fields map[string]json.RawMessage) ([]tool, *toolChoice, *Error) {
	var tools []tool
	if v, ok := fields["tools"]; ok {
		var in []struct {
			Type     string `json:"type"`
			Function *struct {
				Name        string          `json:"name"`
				Description string          `json:"description"`
				Parameters  json.RawMessage `json:"parameters"`
			} `json:"function"`
		}
		if json.Unmarshal(v, &in) != nil {
			return nil, nil, badRequest("tools", "tools: must be a list of tools")
		}
		for i, t := range in {
			p := fmt.Sprintf("tools[%d]", i)
			if t.Type != "function" || t.Function == nil {
				return nil, nil, badRequest(p+".type", "%s: only function tools are supported, got type %q", p, t.Type)
			}
			var err *Error
			if tools, err = appendTool(tools, p+".function", t.Function.Name, t.Function.Description, t.Function.Parameters); err != nil {
				return nil, nil, err
			}
		}
	}
	choice, err := toolChoiceOf(fields, func(v json.RawMessage) string {
		var named struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(v, &named) != nil || named.Type != "function" {
			return ""
		}
		return named.Function.Name
	}, `{"type":"function","function":{"name":…}}`)
	if err != nil {
		return nil, nil, err
	}
	return finishTools(fields, tools, choice)
}

// finishTools checks a named choice against the tools and applies
// parallel_tool_calls: false (both APIs spell them alike).
func finishTools(fields map[string]json.RawMessage, tools []tool, choice *toolChoice) ([]tool, *toolChoice, *Error) {
	if choice != nil && choice.Type == "tool" && !slices.ContainsFunc(tools, func(t tool) bool { return t.Name == choice.Name }) {
		return nil, nil, badRequest("tool_choice", "tool_choice: names function %q, which is not in tools", choice.Name)
	}
	if len(tools) == 0 {
		return nil, nil, nil // a choice among no tools means nothing
	}
	if v, ok := fields["parallel_tool_calls"]; ok {
		var parallel bool
		if json.Unmarshal(v, &parallel) != nil {
			return nil, nil, badRequest("parallel_tool_calls", "parallel_tool_calls: must be a boolean")
		}
		if !parallel {
			if choice == nil {
				choice = &toolChoice{Type: "auto"}
			}
			if choice.Type != "none" {
				choice.DisableParallelToolUse = true
			}
		}
	}
	return tools, choice, nil
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

func isObjectSchema(raw json.RawMessage) bool {
	var m struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(raw, &m) == nil && m.Type == "object"
}

func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// marshalErr is marshal for values that carry client bytes.
func marshalErr(v any) (b []byte, err error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
