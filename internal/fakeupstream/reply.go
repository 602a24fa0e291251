package fakeupstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
)

// Usage is the token accounting the fake reports, with the API's meaning:
// OutputTokens is the final (cumulative) count.
type Usage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	// CacheCreation splits the cache writes by TTL, as the API does.
	CacheCreation CacheCreation `json:"cache_creation"`
}

// CacheCreation is usage.cache_creation: cache writes by TTL.
type CacheCreation struct {
	Ephemeral5m int `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int `json:"ephemeral_1h_input_tokens"`
}

// Answer is what the fake replies to a Messages request body.
type Answer struct {
	Model      string
	Stream     bool
	Text       string
	StopReason string // "end_turn", or "max_tokens" when truncated
	Usage      Usage
	// Tools are the tool_use blocks after Text (see shape in tools.go).
	Tools []ToolCall
	// Thinking, when not empty, is a thinking block before Text (a request
	// with thinking enabled; thinking.go).
	Thinking string
}

// Reply computes the fake's deterministic answer to a /v1/messages body,
// so tests can predict exactly what the upstream will report:
//
//   - Text is "Hello from the fake upstream. You said: " followed by the
//     first 40 characters of the last user message's last text block;
//   - OutputTokens is the number of words of Text; if it exceeds
//     max_tokens, Text keeps its first max_tokens words and StopReason is
//     "max_tokens";
//   - InputTokens is len(raw "messages" value in the body)/4 + 1 (the same
//     number count_tokens answers);
//   - with n occurrences of "cache_control" in the body,
//     CacheCreationInputTokens is 100·n and CacheReadInputTokens 50·n;
//     of the writes, 100 per `"ttl":"1h"` in the body are 1-hour writes
//     (usage.cache_creation.ephemeral_1h_input_tokens), the rest 5-minute;
//   - tool results, tool calls and images change Text as shape (tools.go)
//     says;
//   - with output_format, Text is a JSON instance of its schema
//     (structuredAnswer, betas.go);
//   - with thinking enabled, a thinking block "Thinking about: " and the
//     first 40 characters of the user text comes first (thinking.go).
//
// A body the API would reject returns an error whose text is the API's
// invalid_request_error message.
func Reply(body []byte) (Answer, error) {
	req, err := parseMessages(body, true)
	if err != nil {
		return Answer{}, err
	}
	text := "Hello from the fake upstream. You said: " + truncateRunes(lastUserText(req.messages), 40)
	stop := "end_turn"
	words := strings.Fields(text)
	if len(words) > req.maxTokens {
		words = words[:req.maxTokens]
		text = strings.Join(words, " ")
		stop = "max_tokens"
	}
	rules, err := checkContent(body)
	if err != nil {
		return Answer{}, err
	}
	n := bytes.Count(body, []byte(`"cache_control"`))
	n1h := min(n, bytes.Count(body, []byte(`"ttl":"1h"`)))
	ans := shape(body, rules, Answer{
		Model:      req.model,
		Stream:     req.stream,
		Text:       text,
		StopReason: stop,
		Usage: Usage{
			InputTokens:              inputTokens(req.rawMessages),
			OutputTokens:             len(words),
			CacheCreationInputTokens: 100 * n,
			CacheReadInputTokens:     50 * n,
			CacheCreation:            CacheCreation{Ephemeral5m: 100 * (n - n1h), Ephemeral1h: 100 * n1h},
		},
	})
	ans = structuredAnswer(body, lastUserText(req.messages), ans)
	return withThinking(body, req, ans)
}

func inputTokens(rawMessages []byte) int { return len(rawMessages)/4 + 1 }

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type messagesRequest struct {
	model       string
	maxTokens   int
	stream      bool
	messages    []message
	rawMessages json.RawMessage
}

// parseMessages validates a Messages (or, without needMaxTokens, a
// count_tokens) body the way the API does, with its error wording (hence
// the capitalised messages: they are answer text, not Go error chains).
func parseMessages(body []byte, needMaxTokens bool) (messagesRequest, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return messagesRequest{}, errors.New("There was an issue with your request body: expected a JSON object")
	}
	var r messagesRequest
	raw, ok := fields["model"]
	if !ok {
		return r, errors.New("model: Field required")
	}
	if err := json.Unmarshal(raw, &r.model); err != nil || r.model == "" {
		return r, errors.New("model: Input should be a valid string")
	}
	if needMaxTokens {
		raw, ok := fields["max_tokens"]
		if !ok {
			return r, errors.New("max_tokens: Field required")
		}
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || f < 1 {
			return r, errors.New("max_tokens: Input should be a valid integer greater than or equal to 1")
		}
		r.maxTokens = int(min(f, math.MaxInt32))
	}
	raw, ok = fields["messages"]
	if !ok {
		return r, errors.New("messages: Field required")
	}
	if err := json.Unmarshal(raw, &r.messages); err != nil {
		return r, errors.New("messages: Input should be a valid list of messages")
	}
	if len(r.messages) == 0 {
		return r, errors.New("messages: at least one message is required")
	}
	r.rawMessages = raw
	if raw, ok := fields["stream"]; ok {
		if err := json.Unmarshal(raw, &r.stream); err != nil {
			return r, errors.New("stream: Input should be a valid boolean")
		}
	}
	return r, nil
}

// lastUserText is the last text block of the last user message.
func lastUserText(msgs []message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		var s string
		if json.Unmarshal(msgs[i].Content, &s) == nil {
			return s
		}
		var blocks []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if json.Unmarshal(msgs[i].Content, &blocks) == nil {
			for j := len(blocks) - 1; j >= 0; j-- {
				if blocks[j].Type == "text" {
					return blocks[j].Text
				}
			}
		}
		return ""
	}
	return ""
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

// splitRunes cuts s into k consecutive pieces of near-equal rune length
// (some empty when s is shorter than k).
func splitRunes(s string, k int) []string {
	r := []rune(s)
	out := make([]string, k)
	for i := range k {
		out[i] = string(r[i*len(r)/k : (i+1)*len(r)/k])
	}
	return out
}
