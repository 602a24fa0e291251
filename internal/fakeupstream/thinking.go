package fakeupstream

import (
	"encoding/json"
	"errors"
)

// Extended thinking: a request with thinking enabled gets a thinking block
// before its text, with the API's rules on the budget.

// fakeSignature is the thinking block's signature (the API's is opaque).
const fakeSignature = "fake-thinking-signature"

// withThinking checks the request's thinking settings as the API does and
// adds the thinking block when enabled.
func withThinking(body []byte, req messagesRequest, ans Answer) (Answer, error) {
	var r struct {
		Thinking *struct {
			Type         string `json:"type"`
			BudgetTokens int    `json:"budget_tokens"`
		} `json:"thinking"`
	}
	if json.Unmarshal(body, &r) != nil || r.Thinking == nil || r.Thinking.Type != "enabled" {
		return ans, nil
	}
	if r.Thinking.BudgetTokens < 1024 {
		return Answer{}, errors.New("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
	}
	if r.Thinking.BudgetTokens >= req.maxTokens {
		return Answer{}, errors.New("`max_tokens` must be greater than `thinking.budget_tokens`")
	}
	ans.Thinking = "Thinking about: " + truncateRunes(lastUserText(req.messages), 40)
	return ans, nil
}

// textIndex is the text block's index: after the thinking block, if any.
func textIndex(ans Answer) int {
	if ans.Thinking != "" {
		return 1
	}
	return 0
}

// thinkingEvents streams the thinking block (index 0): its text in one
// delta, then its signature.
func thinkingEvents(ans Answer) []sseEvent {
	if ans.Thinking == "" {
		return nil
	}
	return []sseEvent{
		{"content_block_start", map[string]any{"type": "content_block_start", "index": 0,
			"content_block": map[string]any{"type": "thinking", "thinking": ""}}},
		{"content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "thinking_delta", "thinking": ans.Thinking}}},
		{"content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "signature_delta", "signature": fakeSignature}}},
		{"content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}},
	}
}
