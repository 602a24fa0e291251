package openai

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Converter converts an upstream Messages stream written to it; Done
// reports whether the converted stream is complete.
type Converter interface {
	io.Writer
	Done() bool
}

// Converter returns the stream converter for the answer to r: chat chunks,
// or the Responses API's events.
func (r Request) Converter(w io.Writer, created time.Time) Converter {
	if r.responses {
		return r.newResponsesStream(w, created)
	}
	return r.NewStream(w, created)
}

// Answer converts a whole Messages answer to r: a chat.completion or a
// response object.
func (r Request) Answer(body []byte, created time.Time) ([]byte, error) {
	if r.responses {
		return r.convertResponsesAnswer(body, created)
	}
	return r.ConvertResponse(body, created)
}

// response is the Responses API's response object. The fields a stateless
// proxy cannot echo faithfully carry their defaults.
type response struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	CreatedAt          int64           `json:"created_at"`
	Status             string          `json:"status"`
	Background         bool            `json:"background"`
	Error              *respError      `json:"error"`
	IncompleteDetails  *incomplete     `json:"incomplete_details"`
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Model              string          `json:"model"`
	Output             []outputItem    `json:"output"`
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Reasoning          reasoningEcho   `json:"reasoning"`
	Store              bool            `json:"store"`
	Temperature        *float64        `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         string          `json:"tool_choice"`
	Tools              []struct{}      `json:"tools"`
	TopP               *float64        `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              *respUsage      `json:"usage"`
	User               *string         `json:"user"`
	Metadata           struct{}        `json:"metadata"`
}

type respError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type incomplete struct {
	Reason string `json:"reason"`
}

type reasoningEcho struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

// outputItem is a message, a function_call or a reasoning item.
type outputItem struct {
	Type    string         `json:"type"`
	ID      string         `json:"id"`
	Status  string         `json:"status,omitempty"`
	Role    string         `json:"role,omitempty"`
	Content *[]outputText  `json:"content,omitempty"` // a message's, [] while it streams
	CallID  string         `json:"call_id,omitempty"`
	Name    string         `json:"name,omitempty"`
	Args    *string        `json:"arguments,omitempty"`
	Summary *[]summaryText `json:"summary,omitempty"` // a reasoning item's
}

type outputText struct {
	Type        string     `json:"type"`
	Text        string     `json:"text"`
	Annotations []struct{} `json:"annotations"`
	Logprobs    []struct{} `json:"logprobs"`
}

type summaryText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type respUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

func (a anthropicUsage) responses() *respUsage {
	o := a.openai()
	u := &respUsage{InputTokens: o.PromptTokens, OutputTokens: o.CompletionTokens, TotalTokens: o.TotalTokens}
	u.InputTokensDetails.CachedTokens = o.PromptTokensDetails.CachedTokens
	return u
}

// responseID derives the response id from the message id, so a response
// can be traced to the upstream's answer.
func responseID(msgID string) string { return "resp_" + strings.TrimPrefix(msgID, "msg_") }

func textItem(msgID string, index int, text string) outputItem {
	return outputItem{Type: "message", ID: fmt.Sprintf("msg_%s_%d", strings.TrimPrefix(msgID, "msg_"), index),
		Status: "completed", Role: "assistant", Content: &[]outputText{newOutputText(text)}}
}

func newOutputText(text string) outputText {
	return outputText{Type: "output_text", Text: text, Annotations: []struct{}{}, Logprobs: []struct{}{}}
}

func callItem(id, name, args string) outputItem {
	if strings.TrimSpace(args) == "" {
		args = "{}"
	}
	return outputItem{Type: "function_call", ID: "fc_" + id, Status: "completed", CallID: id, Name: name, Args: &args}
}

func reasoningItem(msgID string, index int, text string) outputItem {
	return outputItem{Type: "reasoning", ID: fmt.Sprintf("rs_%s_%d", strings.TrimPrefix(msgID, "msg_"), index),
		Summary: &[]summaryText{{Type: "summary_text", Text: text}}}
}

// newResponse is a response object with its defaults.
func newResponse(msgID, model string, created int64) response {
	return response{ID: responseID(msgID), Object: "response", CreatedAt: created, Status: "in_progress",
		Model: model, Output: []outputItem{}, ParallelToolCalls: true, Text: json.RawMessage(`{"format":{"type":"text"}}`),
		ToolChoice: "auto", Tools: []struct{}{}, Truncation: "disabled"}
}

// finish sets the status a stop reason gives: incomplete, with its reason,
// when the answer was cut.
func (r *response) finish(stop string, u anthropicUsage) {
	r.Status = "completed"
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		r.Status, r.IncompleteDetails = "incomplete", &incomplete{Reason: "max_output_tokens"}
	case "refusal":
		r.Status, r.IncompleteDetails = "incomplete", &incomplete{Reason: "content_filter"}
	}
	r.Usage = u.responses()
}

// convertResponsesAnswer turns a Messages answer into a response object:
// each text block a message item with its output_text, each tool_use a
// function_call item, thinking a reasoning item with its text as summary.
func (r Request) convertResponsesAnswer(body []byte, created time.Time) ([]byte, error) {
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotMessage, err)
	}
	if m.Type != "message" {
		return nil, fmt.Errorf("%w: type %q", ErrNotMessage, m.Type)
	}
	resp := newResponse(m.ID, m.Model, created.Unix())
	stop := m.StopReason
	for i, b := range m.Content {
		switch {
		case b.Type == "thinking":
			resp.Output = append(resp.Output, reasoningItem(m.ID, i, b.Thinking))
		case r.AnswerTool != "" && b.Type == "text":
		case r.AnswerTool != "" && b.Type == "tool_use" && b.Name == r.AnswerTool:
			resp.Output = append(resp.Output, textItem(m.ID, i, string(compact(b.Input))))
			if stop == "tool_use" {
				stop = "end_turn"
			}
		case b.Type == "text":
			resp.Output = append(resp.Output, textItem(m.ID, i, b.Text))
		case b.Type == "tool_use":
			args := ""
			if !isNull(b.Input) {
				args = string(compact(b.Input))
			}
			resp.Output = append(resp.Output, callItem(b.ID, b.Name, args))
		}
	}
	resp.finish(stop, m.Usage)
	return marshal(resp), nil
}
