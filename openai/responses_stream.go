package openai

import (
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"
)

// ResponsesStream converts a Messages SSE stream into the Responses API's
// events: response.created, then per content block its output item
// (added, the deltas, done), then response.completed (or
// response.incomplete) with the usage. Like Stream, each Write converts
// every event those bytes complete and writes the result in one call.
type ResponsesStream struct {
	sseConverter // Write, Done
	created      int64
	answerTool   string
	seq          int

	resp    response
	started bool
	blocks  map[int]*openItem // Messages block index → its output item
	usage   anthropicUsage
	stop    string
}

// openItem is an output item being streamed.
type openItem struct {
	kind  string // "text", "call" or "reasoning"
	index int    // output_index
	item  outputItem
	text  strings.Builder // text, arguments or reasoning so far
}

func (r Request) newResponsesStream(w io.Writer, created time.Time) *ResponsesStream {
	s := &ResponsesStream{created: created.Unix(), answerTool: r.AnswerTool, blocks: map[int]*openItem{}}
	s.init(w, s.convert)
	return s
}

// streamEvent is every Responses stream event's fields, in the order the
// API writes them; each event sets the ones it has.
type streamEvent struct {
	Type           string      `json:"type"`
	SequenceNumber int         `json:"sequence_number"`
	Response       *response   `json:"response,omitempty"`
	OutputIndex    *int        `json:"output_index,omitempty"`
	ItemID         string      `json:"item_id,omitempty"`
	ContentIndex   *int        `json:"content_index,omitempty"`
	SummaryIndex   *int        `json:"summary_index,omitempty"`
	Item           *outputItem `json:"item,omitempty"`
	Part           any         `json:"part,omitempty"`
	Delta          *string     `json:"delta,omitempty"`
	Text           *string     `json:"text,omitempty"`
	Name           string      `json:"name,omitempty"`
	Arguments      *string     `json:"arguments,omitempty"`
	Logprobs       *[]struct{} `json:"logprobs,omitempty"`
	Code           string      `json:"code,omitempty"`
	Message        string      `json:"message,omitempty"`
	Param          *string     `json:"param,omitempty"`
}

func (s *ResponsesStream) emit(e streamEvent) {
	e.SequenceNumber = s.seq
	s.seq++
	s.out = append(s.out, "event: "...)
	s.out = append(s.out, e.Type...)
	s.out = append(s.out, "\ndata: "...)
	s.out = append(s.out, marshal(e)...)
	s.out = append(s.out, "\n\n"...)
}

var zero = 0

// convert writes the events of one upstream event (response.completed,
// response.incomplete or an error ends the stream: sseConverter.done).
func (s *ResponsesStream) convert(typ string, ev *upstreamEvent, data []byte) {
	switch typ {
	case "message_start":
		if s.started {
			return
		}
		s.started = true
		s.resp = newResponse(ev.Message.ID, ev.Message.Model, s.created)
		s.usage.merge(ev.Message.Usage)
		r := s.resp
		s.emit(streamEvent{Type: "response.created", Response: &r})
		s.emit(streamEvent{Type: "response.in_progress", Response: &r})
	case "content_block_start":
		s.blockStart(*ev)
	case "content_block_delta":
		s.blockDelta(*ev)
	case "content_block_stop":
		s.blockStop(ev.Index)
	case "message_delta":
		s.usage.merge(ev.Usage)
		if ev.Delta.StopReason != "" {
			s.stop = ev.Delta.StopReason
		}
	case "message_stop":
		s.closeBlocks()
		stop := s.stop
		if s.answerTool != "" && stop == "tool_use" {
			stop = "end_turn"
		}
		s.resp.finish(stop, s.usage)
		r := s.resp
		typ := "response.completed"
		if r.Status == "incomplete" {
			typ = "response.incomplete"
		}
		s.emit(streamEvent{Type: typ, Response: &r})
		s.done = true
	case "error":
		e := FromAnthropic(0, data)
		code := e.Code
		if code == "" {
			code = e.Type
		}
		s.emit(streamEvent{Type: "error", Code: code, Message: e.Message})
		r := s.resp
		r.Status, r.Error = "failed", &respError{Code: code, Message: e.Message}
		r.Usage = s.usage.responses()
		s.emit(streamEvent{Type: "response.failed", Response: &r})
		s.done = true
	}
}

// closeBlocks ends the items of blocks the upstream never closed, in
// order: Messages streams one block at a time, so a new block or the end of
// the message closes them.
func (s *ResponsesStream) closeBlocks() {
	open := make([]int, 0, len(s.blocks))
	for i := range s.blocks {
		open = append(open, i)
	}
	slices.Sort(open)
	for _, i := range open {
		s.blockStop(i)
	}
}

func (s *ResponsesStream) blockStart(ev upstreamEvent) {
	if !s.started {
		return
	}
	s.closeBlocks()
	cb := ev.ContentBlock
	idx := len(s.resp.Output) + len(s.blocks)
	it := &openItem{index: idx}
	msgID := strings.TrimPrefix(s.resp.ID, "resp_")
	switch {
	case s.answerTool != "" && cb.Type == "tool_use" && cb.Name == s.answerTool,
		s.answerTool == "" && cb.Type == "text":
		it.kind = "text"
		it.item = textItem(msgID, ev.Index, "")
		it.item.Status, it.item.Content = "in_progress", &[]outputText{}
	case cb.Type == "tool_use":
		it.kind = "call"
		it.item = callItem(cb.ID, cb.Name, "")
		empty := ""
		it.item.Status, it.item.Args = "in_progress", &empty
	case cb.Type == "thinking":
		it.kind = "reasoning"
		it.item = reasoningItem(msgID, ev.Index, "")
		it.item.Summary = &[]summaryText{}
	default:
		return // a text block beside a forced answer, or a block type OpenAI has no item for
	}
	s.blocks[ev.Index] = it
	item := it.item
	s.emit(streamEvent{Type: "response.output_item.added", OutputIndex: &it.index, Item: &item})
	switch it.kind {
	case "text":
		s.emit(streamEvent{Type: "response.content_part.added", ItemID: it.item.ID, OutputIndex: &it.index, ContentIndex: &zero,
			Part: newOutputText("")})
		if cb.Type == "text" && cb.Text != "" {
			s.delta(it, cb.Text)
		}
	case "reasoning":
		s.emit(streamEvent{Type: "response.reasoning_summary_part.added", ItemID: it.item.ID, OutputIndex: &it.index, SummaryIndex: &zero,
			Part: summaryText{Type: "summary_text"}})
		if cb.Thinking != "" {
			s.delta(it, cb.Thinking)
		}
	}
}

func (s *ResponsesStream) blockDelta(ev upstreamEvent) {
	it := s.blocks[ev.Index]
	if it == nil {
		return
	}
	switch ev.Delta.Type {
	case "text_delta":
		s.delta(it, ev.Delta.Text)
	case "input_json_delta":
		s.delta(it, ev.Delta.PartialJSON)
	case "thinking_delta":
		s.delta(it, ev.Delta.Thinking)
	}
}

// delta streams a piece of an item's text, arguments or reasoning.
func (s *ResponsesStream) delta(it *openItem, d string) {
	if d == "" {
		return
	}
	it.text.WriteString(d)
	switch it.kind {
	case "text":
		s.emit(streamEvent{Type: "response.output_text.delta", ItemID: it.item.ID, OutputIndex: &it.index, ContentIndex: &zero,
			Delta: &d, Logprobs: &[]struct{}{}})
	case "call":
		s.emit(streamEvent{Type: "response.function_call_arguments.delta", ItemID: it.item.ID, OutputIndex: &it.index, Delta: &d})
	case "reasoning":
		s.emit(streamEvent{Type: "response.reasoning_summary_text.delta", ItemID: it.item.ID, OutputIndex: &it.index, SummaryIndex: &zero, Delta: &d})
	}
}

func (s *ResponsesStream) blockStop(index int) {
	it := s.blocks[index]
	if it == nil {
		return
	}
	delete(s.blocks, index)
	text := it.text.String()
	var item outputItem
	switch it.kind {
	case "text":
		if s.answerTool != "" {
			text = string(compact(json.RawMessage(text)))
		}
		item = textItem("", 0, text)
		item.ID = it.item.ID
		s.emit(streamEvent{Type: "response.output_text.done", ItemID: item.ID, OutputIndex: &it.index, ContentIndex: &zero,
			Text: &text, Logprobs: &[]struct{}{}})
		s.emit(streamEvent{Type: "response.content_part.done", ItemID: item.ID, OutputIndex: &it.index, ContentIndex: &zero,
			Part: (*item.Content)[0]})
	case "call":
		item = callItem(it.item.CallID, it.item.Name, text)
		s.emit(streamEvent{Type: "response.function_call_arguments.done", ItemID: item.ID, OutputIndex: &it.index,
			Name: item.Name, Arguments: item.Args})
	case "reasoning":
		item = reasoningItem("", 0, text)
		item.ID = it.item.ID
		s.emit(streamEvent{Type: "response.reasoning_summary_text.done", ItemID: item.ID, OutputIndex: &it.index, SummaryIndex: &zero, Text: &text})
		s.emit(streamEvent{Type: "response.reasoning_summary_part.done", ItemID: item.ID, OutputIndex: &it.index, SummaryIndex: &zero,
			Part: (*item.Summary)[0]})
	}
	s.emit(streamEvent{Type: "response.output_item.done", OutputIndex: &it.index, Item: &item})
	s.resp.Output = append(s.resp.Output, item)
}
