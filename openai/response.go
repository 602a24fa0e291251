package openai

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Usage is OpenAI's usage object. PromptTokens counts every input token
// the upstream read, cached or not, as OpenAI does; CachedTokens is the
// part read from the prompt cache.
type Usage struct {
	PromptTokens        int          `json:"prompt_tokens"`
	CompletionTokens    int          `json:"completion_tokens"`
	TotalTokens         int          `json:"total_tokens"`
	PromptTokensDetails promptDetail `json:"prompt_tokens_details"`
}

type promptDetail struct {
	CachedTokens int `json:"cached_tokens"`
}

// anthropicUsage is Messages' usage; in a stream, message_delta's
// output_tokens is cumulative (overwrite, don't add) and the input counts
// come with message_start (later ones overwrite when present).
type anthropicUsage struct {
	InputTokens              *int `json:"input_tokens"`
	OutputTokens             *int `json:"output_tokens"`
	CacheCreationInputTokens *int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int `json:"cache_read_input_tokens"`
}

// merge overwrites the counts u carries.
func (a *anthropicUsage) merge(u anthropicUsage) {
	for _, p := range []struct{ dst, src **int }{
		{&a.InputTokens, &u.InputTokens}, {&a.OutputTokens, &u.OutputTokens},
		{&a.CacheCreationInputTokens, &u.CacheCreationInputTokens}, {&a.CacheReadInputTokens, &u.CacheReadInputTokens},
	} {
		if *p.src != nil {
			v := **p.src
			*p.dst = &v
		}
	}
}

func val(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func (a anthropicUsage) openai() Usage {
	read := val(a.CacheReadInputTokens)
	prompt := val(a.InputTokens) + read + val(a.CacheCreationInputTokens)
	out := val(a.OutputTokens)
	return Usage{PromptTokens: prompt, CompletionTokens: out, TotalTokens: prompt + out,
		PromptTokensDetails: promptDetail{CachedTokens: read}}
}

// FinishReason maps a Messages stop_reason to OpenAI's finish_reason.
func FinishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	default: // end_turn, stop_sequence, pause_turn
		return "stop"
	}
}

// completionID derives the chat.completion id from the message id, so a
// completion can be traced to the upstream's answer.
func completionID(msgID string) string { return "chatcmpl-" + msgID }

type message struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Model      string         `json:"model"`
	StopReason string         `json:"stop_reason"`
	Content    []contentBlock `json:"content"`
	Usage      anthropicUsage `json:"usage"`
}

type contentBlock struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Thinking string          `json:"thinking"`
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Input    json.RawMessage `json:"input"`
}

type completion struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []choice `json:"choices"`
	Usage             Usage    `json:"usage"`
	SystemFingerprint *string  `json:"system_fingerprint"`
}

type choice struct {
	Index        int           `json:"index"`
	Message      answerMessage `json:"message"`
	Logprobs     *struct{}     `json:"logprobs"`
	FinishReason string        `json:"finish_reason"`
}

type answerMessage struct {
	Role             string     `json:"role"`
	Content          *string    `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	Refusal          *string    `json:"refusal"`
	ToolCalls        []toolCall `json:"tool_calls,omitempty"`
}

type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function functionCall `json:"function"`
}

type functionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ErrNotMessage is returned for a body that is not a Messages answer.
var ErrNotMessage = errors.New("openai: not a Messages answer")

// ConvertResponse turns a Messages answer into a chat.completion: text
// blocks joined into content, tool_use blocks into tool_calls with their
// input as a JSON string, thinking into reasoning_content (as other
// gateways return it).
func ConvertResponse(body []byte, created time.Time) ([]byte, error) {
	return Request{}.ConvertResponse(body, created)
}

// ConvertResponse converts the answer to r: when r forced the answer
// through a tool (AnswerTool), that tool's input is the content, and the
// completion stops as a plain answer does.
func (r Request) ConvertResponse(body []byte, created time.Time) ([]byte, error) {
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotMessage, err)
	}
	if m.Type != "message" {
		return nil, fmt.Errorf("%w: type %q", ErrNotMessage, m.Type)
	}
	var text, reasoning strings.Builder
	msg := answerMessage{Role: "assistant"}
	stop := m.StopReason
	for _, b := range m.Content {
		switch {
		case b.Type == "thinking":
			reasoning.WriteString(b.Thinking)
		case r.AnswerTool != "" && b.Type == "text":
			// Only the forced tool's input is the answer.
		case r.AnswerTool != "" && b.Type == "tool_use" && b.Name == r.AnswerTool:
			text.Write(compact(b.Input))
			if stop == "tool_use" {
				stop = "end_turn"
			}
		case b.Type == "text":
			text.WriteString(b.Text)
		case b.Type == "tool_use":
			args := "{}"
			if len(b.Input) > 0 && string(b.Input) != "null" {
				args = string(compact(b.Input))
			}
			msg.ToolCalls = append(msg.ToolCalls, toolCall{ID: b.ID, Type: "function",
				Function: functionCall{Name: b.Name, Arguments: args}})
		}
	}
	if text.Len() > 0 || len(msg.ToolCalls) == 0 {
		s := text.String()
		msg.Content = &s
	}
	msg.ReasoningContent = reasoning.String()
	return marshal(completion{
		ID: completionID(m.ID), Object: "chat.completion", Created: created.Unix(), Model: m.Model,
		Choices: []choice{{Index: 0, Message: msg, FinishReason: FinishReason(stop)}},
		Usage:   m.Usage.openai(),
	}), nil
}
