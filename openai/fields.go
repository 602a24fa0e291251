package openai

import (
	"encoding/json"
	"strings"
)

// What the chat.completions and Responses converters share: reading the
// body's fields, the model, the sampling parameters, the end user, a
// function tool, tool_choice and the Messages body they produce.

// fieldsOf reads a request body as a JSON object's fields and has check
// refuse what the endpoint cannot map. Explicit nulls mean "not given",
// as OpenAI treats them.
func fieldsOf(body []byte, check func(map[string]json.RawMessage) *Error) (map[string]json.RawMessage, *Error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, badRequest("", "The request body must be a JSON object: %s", jsonErr(err))
	}
	for k, v := range fields {
		if string(v) == "null" {
			delete(fields, k)
		}
	}
	if err := check(fields); err != nil {
		return nil, err
	}
	return fields, nil
}

// modelOf reads the required model, mapped by opts.Model (aliases).
func modelOf(fields map[string]json.RawMessage, opts RequestOptions) (string, *Error) {
	var model string
	if err := str(fields, "model", &model); err != nil {
		return "", err
	}
	if strings.TrimSpace(model) == "" {
		return "", badRequest("model", "model: a model name is required")
	}
	if opts.Model != nil {
		model = opts.Model(model)
	}
	return model, nil
}

// sampling reads temperature and top_p into out: both APIs take them as
// Messages does, within Claude's ranges.
func sampling(fields map[string]json.RawMessage, out *messagesRequest) *Error {
	var err *Error
	if out.Temperature, err = number(fields, "temperature", 0, 1, "temperature: Claude models accept 0 to 1"); err != nil {
		return err
	}
	out.TopP, err = number(fields, "top_p", 0, 1, "top_p: must be between 0 and 1")
	return err
}

// endUser reads the fields that name the end user (the last one given
// and not empty wins) as Messages metadata; nil when none does.
func endUser(fields map[string]json.RawMessage, names ...string) (*metadata, *Error) {
	var m *metadata
	for _, name := range names {
		v, ok := fields[name]
		if !ok {
			continue
		}
		var u string
		if json.Unmarshal(v, &u) != nil {
			return nil, badRequest(name, "%s: must be a string", name)
		}
		if u != "" {
			m = &metadata{UserID: userID(u)}
		}
	}
	return m, nil
}

// finish puts the Messages body of out into req.
func finish(req Request, out messagesRequest) (Request, *Error) {
	b, err := marshalErr(out)
	if err != nil {
		return Request{}, badRequest("", "The request could not be converted: %v", err)
	}
	req.Body, req.Model = b, out.Model
	return req, nil
}

// appendTool appends a function tool to tools; p names where it is in the
// request (tools[i], or tools[i].function where the API nests it).
func appendTool(tools []tool, p, name, description string, parameters json.RawMessage) ([]tool, *Error) {
	if !toolName.MatchString(name) {
		return nil, badRequest(p+".name", "%s.name: must be 1 to 64 letters, digits, _ or -", p)
	}
	schema := parameters
	if isNull(schema) {
		schema = json.RawMessage(`{"type":"object","properties":{}}`)
	} else if !isObjectSchema(schema) {
		return nil, badRequest(p+".parameters", `%s.parameters: must be a JSON schema with "type": "object"`, p)
	}
	return append(tools, tool{Name: name, Description: description, InputSchema: compact(schema)}), nil
}

// toolChoiceOf reads tool_choice: auto, none, required, or a function
// named as each API spells it (named reads the name, "" when v is not
// such a choice; spelled shows the form in the error).
func toolChoiceOf(fields map[string]json.RawMessage, named func(v json.RawMessage) string, spelled string) (*toolChoice, *Error) {
	v, ok := fields["tool_choice"]
	if !ok {
		return nil, nil
	}
	var mode string
	if json.Unmarshal(v, &mode) == nil {
		switch mode {
		case "auto", "none":
			return &toolChoice{Type: mode}, nil
		case "required":
			return &toolChoice{Type: "any"}, nil
		}
		return nil, badRequest("tool_choice", "tool_choice: must be auto, none, required or a named function, got %q", mode)
	}
	name := named(v)
	if name == "" {
		return nil, badRequest("tool_choice", "tool_choice: must be auto, none, required or %s", spelled)
	}
	return &toolChoice{Type: "tool", Name: name}, nil
}
