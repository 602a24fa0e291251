package openai

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// What real OpenAI clients send that Messages has no field for, or
// refuses, made acceptable. Each rule is listed in README.md ("Chat
// leniency").

// ThinkingBudgets maps a reasoning effort (chat's reasoning_effort, the
// Responses API's reasoning.effort) to an extended-thinking budget in
// tokens. "none" turns thinking off. Messages needs at least 1024.
var ThinkingBudgets = map[string]int{
	"none":    0,
	"minimal": 1024,
	"low":     2048,
	"medium":  8192,
	"high":    24576,
}

type thinking struct {
	Type         string `json:"type"`
	BudgetTokens int    `json:"budget_tokens"`
}

// applyEffort turns an effort into thinking. OpenAI counts reasoning in
// the completion's token limit; Messages counts thinking in max_tokens
// too, and wants the budget below it. So a client's own limit bounds the
// budget (no thinking when that leaves less than 1024), and without one
// the budget is added to the default. Thinking is left off where Messages
// would refuse it: when the answer is forced through a tool, and when the
// latest assistant turn called tools (its thinking block, with the
// signature Messages wants back, is not part of OpenAI's history).
func applyEffort(out *messagesRequest, effort, param string, limitGiven bool, forced bool) *Error {
	budget, ok := ThinkingBudgets[effort]
	if !ok {
		return badRequest(param, "%s: must be none, minimal, low, medium or high, got %q", param, effort)
	}
	if budget == 0 || forced || lastAssistantCalledTools(out.Messages) {
		return nil
	}
	if limitGiven {
		budget = min(budget, out.MaxTokens-1)
		if budget < 1024 {
			return nil
		}
	} else {
		out.MaxTokens += budget
	}
	out.Thinking = &thinking{Type: "enabled", BudgetTokens: budget}
	// Messages refuses a temperature or a narrowed top_p with thinking.
	out.Temperature, out.TopP = nil, nil
	return nil
}

func lastAssistantCalledTools(turns []turn) bool {
	for i := len(turns) - 1; i >= 0; i-- {
		if turns[i].Role != "assistant" {
			continue
		}
		bs, _ := turns[i].Content.([]block)
		return slices.ContainsFunc(bs, func(b block) bool { return b.Type == "tool_use" })
	}
	return false
}

// AnswerTool is the name of the tool a structured answer is forced
// through on a model without structured outputs.
const AnswerTool = "json_answer"

// StructuredOutputsBeta is the anthropic-beta value output_format needs.
const StructuredOutputsBeta = "structured-outputs-2025-11-13"

// hasStructuredOutputs reports whether a model takes output_format: the
// Claude 4.5 family and Opus 4.1 (and the later ones, whose ids sort
// after them).
func hasStructuredOutputs(model string) bool {
	for _, p := range []string{"claude-sonnet-4-5", "claude-opus-4-5", "claude-haiku-4-5", "claude-opus-4-1"} {
		if strings.HasPrefix(model, p) {
			return true
		}
	}
	return false
}

// format is a response_format (chat) or text.format (Responses).
type format struct {
	Type string `json:"type"`
	// chat nests the schema; Responses has name and schema at the top.
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
}

// applyFormat maps a response format. json_schema uses Messages' structured
// outputs on a model that has them (the answer's text is the JSON); on
// others, and for json_object (structured outputs need a closed schema),
// the answer is forced through a tool whose input is the answer, and the
// conversion back returns that input as the text. It reports the beta the
// request then needs and the forced tool's name.
func applyFormat(out *messagesRequest, raw json.RawMessage, param string) (beta, answerTool string, err *Error) {
	if raw == nil {
		return "", "", nil
	}
	var f format
	if json.Unmarshal(raw, &f) != nil {
		return "", "", badRequest(param, "%s: must be an object with a type", param)
	}
	var schema json.RawMessage
	switch f.Type {
	case "text":
		return "", "", nil
	case "json_object":
		schema = json.RawMessage(`{"type":"object"}`)
	case "json_schema":
		schema = f.Schema
		if f.JSONSchema != nil {
			schema = f.JSONSchema.Schema
		}
		if isNull(schema) {
			return "", "", badRequest(param, "%s: json_schema needs a schema", param)
		}
		if !isObjectSchema(schema) {
			return "", "", badRequest(param, `%s: the schema must have "type": "object"`, param)
		}
		if hasStructuredOutputs(out.Model) {
			out.OutputFormat = &outputFormat{Type: "json_schema", Schema: compact(schema)}
			return StructuredOutputsBeta, "", nil
		}
	default:
		return "", "", badRequest(param, "%s: type must be text, json_object or json_schema, got %q", param, f.Type)
	}
	if len(out.Tools) > 0 {
		return "", "", badRequest(param, "%s: a JSON answer and tools cannot be combined on this model", param)
	}
	out.Tools = []tool{{Name: AnswerTool, Description: "Give the answer: its input is the whole answer.", InputSchema: compact(schema)}}
	out.ToolChoice = &toolChoice{Type: "tool", Name: AnswerTool}
	return "", AnswerTool, nil
}

type outputFormat struct {
	Type   string          `json:"type"`
	Schema json.RawMessage `json:"schema"`
}

var email = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// userID is metadata.user_id for OpenAI's user: Messages refuses an
// email address there, so one is sent as its SHA-256 (the same user still
// maps to the same id).
func userID(u string) string {
	if email.MatchString(strings.TrimSpace(u)) {
		sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(u))))
		return "user-" + hex.EncodeToString(sum[:16])
	}
	return u
}

// historyTools declares the tools a conversation's history called when the
// request sends none: Messages refuses tool_use blocks without tools.
// They are offered with tool_choice none, so the model cannot call them.
func historyTools(turns []turn) ([]tool, *toolChoice) {
	var tools []tool
	for _, t := range turns {
		bs, _ := t.Content.([]block)
		for _, b := range bs {
			if b.Type == "tool_use" && !slices.ContainsFunc(tools, func(x tool) bool { return x.Name == b.Name }) {
				tools = append(tools, tool{Name: b.Name, Description: fmt.Sprintf("%s (called earlier in this conversation; not offered now)", b.Name),
					InputSchema: json.RawMessage(`{"type":"object"}`)})
			}
		}
	}
	if tools == nil {
		return nil, nil
	}
	return tools, &toolChoice{Type: "none"}
}
