package openai

import (
	"bytes"
	"io"
	"time"
	"unicode/utf8"
)

// Stream converts an Anthropic Messages SSE stream into OpenAI
// chat.completion.chunk events. Feed it the upstream's bytes as they come,
// in any chunking: each Write converts every event completed by those
// bytes and writes the result to the underlying writer in one call before
// it returns, so nothing waits for the end of the stream. The caller
// flushes after each Write.
type Stream struct {
	sseConverter // Write, Done
	created      int64
	includeUsage bool

	id, model string
	// prefix is every chunk's opening up to its choices, fixed once the
	// message starts: the many content deltas are written without
	// reflection.
	prefix []byte
	tools  map[int]int // Messages block index → tool_calls index
	// answerTool is the forced tool whose input is the content;
	// answerIndex its block's index (-1 until it starts).
	answerTool  string
	answerIndex int
	nextTool    int
	usage       anthropicUsage
	finished    bool // the chunk with finish_reason was sent
}

// NewStream returns a converter writing to w; created stamps every chunk,
// includeUsage adds the final usage chunk (stream_options.include_usage).
func NewStream(w io.Writer, created time.Time, includeUsage bool) *Stream {
	return Request{IncludeUsage: includeUsage}.NewStream(w, created)
}

// NewStream returns a converter for the answer to r (its usage option and
// its forced answer tool, whose input streams as content).
func (r Request) NewStream(w io.Writer, created time.Time) *Stream {
	s := &Stream{created: created.Unix(), includeUsage: r.IncludeUsage, answerTool: r.AnswerTool, tools: map[int]int{}}
	s.init(w, s.convert)
	return s
}

// MaxEvent bounds one line and one event's data of the upstream stream; a
// longer event is dropped unread (no Messages event comes near it).
const MaxEvent = 1 << 20

// upstreamEvent holds the fields of every Messages stream event that the
// conversion reads.
type upstreamEvent struct {
	Type    string `json:"type"`
	Index   int    `json:"index"`
	Message struct {
		ID    string         `json:"id"`
		Model string         `json:"model"`
		Usage anthropicUsage `json:"usage"`
	} `json:"message"`
	ContentBlock contentBlock `json:"content_block"`
	Delta        struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		Thinking    string `json:"thinking"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage anthropicUsage `json:"usage"`
}

// convert writes the chunks of one upstream event ([DONE] or an error
// event ends the stream: sseConverter.done).
func (s *Stream) convert(typ string, ev *upstreamEvent, data []byte) {
	switch typ {
	case "message_start":
		s.id, s.model = completionID(ev.Message.ID), ev.Message.Model
		s.prefix = s.prefix[:0]
		s.usage.merge(ev.Message.Usage)
		empty := ""
		s.chunk(delta{Role: "assistant", Content: &empty}, nil)
	case "content_block_start":
		switch {
		case s.answerTool != "" && ev.ContentBlock.Type == "tool_use" && ev.ContentBlock.Name == s.answerTool:
			s.answerIndex = ev.Index + 1 // +1: the zero value means none
		case s.answerTool != "" && ev.ContentBlock.Type == "text":
			// Only the forced tool's input is the answer.
		case ev.ContentBlock.Type == "thinking":
			if t := ev.ContentBlock.Thinking; t != "" {
				s.chunk(delta{ReasoningContent: &t}, nil)
			}
		case ev.ContentBlock.Type == "text":
			if t := ev.ContentBlock.Text; t != "" {
				s.chunk(delta{Content: &t}, nil)
			}
		case ev.ContentBlock.Type == "tool_use":
			k := s.nextTool
			s.nextTool++
			s.tools[ev.Index] = k
			s.chunk(delta{ToolCalls: []toolCallDelta{{Index: k, ID: ev.ContentBlock.ID, Type: "function",
				Function: functionDelta{Name: ev.ContentBlock.Name}}}}, nil)
		}
	case "content_block_delta":
		switch ev.Delta.Type {
		case "text_delta":
			if t := ev.Delta.Text; t != "" && s.answerTool == "" {
				s.content(t)
			}
		case "thinking_delta":
			if t := ev.Delta.Thinking; t != "" {
				s.chunk(delta{ReasoningContent: &t}, nil)
			}
		case "input_json_delta":
			if ev.Index+1 == s.answerIndex && ev.Delta.PartialJSON != "" {
				s.content(ev.Delta.PartialJSON)
				break
			}
			if k, ok := s.tools[ev.Index]; ok && ev.Delta.PartialJSON != "" {
				s.chunk(delta{ToolCalls: []toolCallDelta{{Index: k, Function: functionDelta{Arguments: ev.Delta.PartialJSON}}}}, nil)
			}
		}
	case "message_delta":
		s.usage.merge(ev.Usage)
		if !s.finished {
			s.finished = true
			stop := ev.Delta.StopReason
			if s.answerIndex != 0 && stop == "tool_use" {
				stop = "end_turn"
			}
			fr := FinishReason(stop)
			s.chunk(delta{}, &fr)
		}
	case "message_stop":
		if !s.finished {
			s.finished = true
			fr := "stop"
			s.chunk(delta{}, &fr)
		}
		if s.includeUsage {
			u := s.usage.openai()
			s.emit(chunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
				Choices: []chunkChoice{}, Usage: &u})
		}
		s.out = append(s.out, "data: [DONE]\n\n"...)
		s.done = true
	case "error":
		// OpenAI's SDKs raise an APIError for a data line carrying "error".
		e := FromAnthropic(0, data)
		s.out = append(s.out, "data: "...)
		s.out = append(s.out, e.JSON()...)
		s.out = append(s.out, "\n\n"...)
		s.done = true
	}
}

type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int       `json:"index"`
	Delta        delta     `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type delta struct {
	Role             string          `json:"role,omitempty"`
	Content          *string         `json:"content,omitempty"`
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallDelta `json:"tool_calls,omitempty"`
}

type toolCallDelta struct {
	Index    int           `json:"index"`
	ID       string        `json:"id,omitempty"`
	Type     string        `json:"type,omitempty"`
	Function functionDelta `json:"function"`
}

type functionDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// content writes a content delta chunk, the bulk of a stream, by hand;
// TestStream holds it to the encoder's output.
func (s *Stream) content(text string) {
	if len(s.prefix) == 0 {
		s.prefix = marshal(chunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model})
		s.prefix = s.prefix[:bytes.LastIndex(s.prefix, []byte(`"choices"`))]
	}
	s.out = append(s.out, "data: "...)
	s.out = append(s.out, s.prefix...)
	s.out = append(s.out, `"choices":[{"index":0,"delta":{"content":`...)
	s.out = appendString(s.out, text)
	s.out = append(s.out, "},\"logprobs\":null,\"finish_reason\":null}]}\n\n"...)
}

// appendString appends s as a JSON string, escaping what JSON requires
// (and U+2028/U+2029, as encoding/json does) but not HTML characters.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func (s *Stream) chunk(d delta, finish *string) {
	s.emit(chunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
		Choices: []chunkChoice{{Index: 0, Delta: d, FinishReason: finish}}})
}

func (s *Stream) emit(c chunk) {
	s.out = append(s.out, "data: "...)
	s.out = append(s.out, marshal(c)...)
	s.out = append(s.out, "\n\n"...)
}
