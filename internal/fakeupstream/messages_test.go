package fakeupstream

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

func TestAuthentication(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := start(t, Options{Clock: fc})
	s.AddOAuth("sk-ant-oat01-revoked", "", fc.Now().Add(time.Hour))
	s.RevokeAccess("sk-ant-oat01-revoked")
	s.AddOAuth("sk-ant-oat01-forced", "", fc.Now().Add(time.Hour))
	s.ExpireAccess("sk-ant-oat01-forced")
	s.AddOAuth("sk-ant-oat01-short", "", fc.Now().Add(time.Minute))
	fc.Advance(time.Minute) // "short" expires exactly now

	noBeta := oauthHeaders(testAccess)
	noBeta.Set("Anthropic-Beta", "claude-code-20250219")
	noVersion := keyHeaders(testKey)
	noVersion.Del("Anthropic-Version")
	both := oauthHeaders(testAccess)
	both.Set("X-Api-Key", "sk-cli-v1-leaked")
	lowerScheme := oauthHeaders(testAccess)
	lowerScheme.Set("Authorization", "bearer "+testAccess)

	cases := []struct {
		name    string
		header  http.Header
		status  int
		errType string
		errMsg  string
		unified bool // OAuth success carries the unified rate-limit headers
	}{
		{"api key", keyHeaders(testKey), 200, "", "", false},
		{"oauth with beta", oauthHeaders(testAccess), 200, "", "", true},
		{"bearer scheme is case-insensitive", lowerScheme, 200, "", "", true},
		{"no credential", http.Header{"Anthropic-Version": {"2023-06-01"}}, 401, "authentication_error", MsgMissingAPIKey, false},
		{"unknown api key", keyHeaders("sk-ant-api03-nope"), 401, "authentication_error", MsgInvalidAPIKey, false},
		{"oauth without beta", noBeta, 401, "authentication_error", MsgOAuthNotSupported, false},
		{"unknown bearer", oauthHeaders("sk-ant-oat01-nope"), 401, "authentication_error", MsgInvalidBearer, false},
		{"revoked bearer", oauthHeaders("sk-ant-oat01-revoked"), 401, "authentication_error", MsgInvalidBearer, false},
		{"expired by ExpireAccess", oauthHeaders("sk-ant-oat01-forced"), 401, "authentication_error", MsgTokenExpired, false},
		{"expired by the clock", oauthHeaders("sk-ant-oat01-short"), 401, "authentication_error", MsgTokenExpired, false},
		{"missing anthropic-version", noVersion, 400, "invalid_request_error", "anthropic-version", false},
		{"leaked x-api-key next to bearer", both, 401, "authentication_error", MsgInvalidAPIKey, false},
	}
	endpoints := []struct{ method, path, body string }{
		{"POST", "/v1/messages", simpleBody},
		{"POST", "/v1/messages?beta=true", simpleBody},
		{"POST", "/v1/messages/count_tokens", simpleBody},
		{"GET", "/v1/models", ""},
	}
	for _, tc := range cases {
		for _, ep := range endpoints {
			t.Run(tc.name+" "+ep.path, func(t *testing.T) {
				status, h, body := call(t, s, ep.method, ep.path, tc.header, ep.body)
				if tc.status != 200 {
					checkError(t, status, h, body, tc.status, tc.errType, tc.errMsg)
					return
				}
				if status != 200 {
					t.Fatalf("status %d: %s", status, body)
				}
				if got := h.Get("anthropic-ratelimit-unified-status") == "allowed"; got != tc.unified {
					t.Errorf("unified status header present = %v, want %v", got, tc.unified)
				}
				if got := h.Get("anthropic-ratelimit-requests-limit") != ""; got == tc.unified {
					t.Errorf("requests-limit header present = %v, want %v", got, !tc.unified)
				}
				if !strings.HasPrefix(h.Get("request-id"), "req_") {
					t.Errorf("request-id header %q", h.Get("request-id"))
				}
			})
		}
	}
	if got := s.MessageCount(); got != 2*3 { // 3 successful cases × 2 message paths
		t.Errorf("MessageCount = %d, want 6", got)
	}
}

func TestBodyValidation(t *testing.T) {
	s := start(t, Options{})
	cases := []struct {
		name, path, body, msg string
	}{
		{"not json", "/v1/messages", `{"model":`, "request body"},
		{"not an object", "/v1/messages", `[1,2]`, "request body"},
		{"no model", "/v1/messages", `{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}`, "model: Field required"},
		{"model not a string", "/v1/messages", `{"model":7,"max_tokens":1,"messages":[{"role":"user","content":"x"}]}`, "model:"},
		{"no max_tokens", "/v1/messages", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens: Field required"},
		{"max_tokens a string", "/v1/messages", `{"model":"m","max_tokens":"1","messages":[{"role":"user","content":"x"}]}`, "max_tokens:"},
		{"max_tokens zero", "/v1/messages", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, "max_tokens:"},
		{"no messages", "/v1/messages", `{"model":"m","max_tokens":1}`, "messages: Field required"},
		{"empty messages", "/v1/messages", `{"model":"m","max_tokens":1,"messages":[]}`, "at least one message"},
		{"messages not a list", "/v1/messages", `{"model":"m","max_tokens":1,"messages":"hi"}`, "messages:"},
		{"stream not a bool", "/v1/messages", `{"model":"m","max_tokens":1,"stream":"yes","messages":[{"role":"user","content":"x"}]}`, "stream:"},
		{"count_tokens without messages", "/v1/messages/count_tokens", `{"model":"m"}`, "messages: Field required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := call(t, s, "POST", tc.path, keyHeaders(testKey), tc.body)
			checkError(t, status, h, body, 400, "invalid_request_error", tc.msg)
		})
	}
	if s.MessageCount() != 0 {
		t.Errorf("rejected bodies were counted as served: %d", s.MessageCount())
	}
}

// messageReply is the non-stream answer's shape.
type messageReply struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	Role         string  `json:"role"`
	Model        string  `json:"model"`
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Content      []struct {
		Type, Text string
	} `json:"content"`
	Usage Usage `json:"usage"`
}

func TestNonStreamMessage(t *testing.T) {
	const question = "What is the capital of France? Please answer briefly."
	rawMessages := `[{"role":"user","content":"` + question + `"}]`
	blocks := `[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},` +
		`{"role":"user","content":[{"type":"text","text":"ignored","cache_control":{"type":"ephemeral"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},{"type":"text","text":"Short one"}]}]`
	cases := []struct {
		name, body string
		want       messageReply
	}{
		{
			name: "plain text",
			body: `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":` + rawMessages + `}`,
			want: messageReply{Model: "claude-sonnet-4-5", StopReason: "end_turn", Usage: Usage{
				InputTokens: len(rawMessages)/4 + 1, OutputTokens: 15}},
		},
		{
			name: "last text block of the last user turn, cache fields",
			body: `{"model":"claude-opus-4-1","max_tokens":100,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral"}}],"messages":` + blocks + `}`,
			want: messageReply{Model: "claude-opus-4-1", StopReason: "end_turn", Usage: Usage{
				InputTokens: len(blocks)/4 + 1, OutputTokens: 9, CacheCreationInputTokens: 200, CacheReadInputTokens: 100,
				CacheCreation: CacheCreation{Ephemeral5m: 200}}},
		},
		{
			name: "1-hour cache writes split out",
			body: `{"model":"claude-opus-4-1","max_tokens":100,"system":[{"type":"text","text":"s","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":` + blocks + `}`,
			want: messageReply{Model: "claude-opus-4-1", StopReason: "end_turn", Usage: Usage{
				InputTokens: len(blocks)/4 + 1, OutputTokens: 9, CacheCreationInputTokens: 200, CacheReadInputTokens: 100,
				CacheCreation: CacheCreation{Ephemeral5m: 100, Ephemeral1h: 100}}},
		},
		{
			name: "max_tokens truncates",
			body: `{"model":"claude-sonnet-4-5","max_tokens":3,"messages":` + rawMessages + `}`,
			want: messageReply{Model: "claude-sonnet-4-5", StopReason: "max_tokens", Usage: Usage{
				InputTokens: len(rawMessages)/4 + 1, OutputTokens: 3}},
		},
	}
	wantText := map[string]string{
		"plain text": "Hello from the fake upstream. You said: What is the capital of France? Please an",
		"last text block of the last user turn, cache fields": "Hello from the fake upstream. You said: Short one",
		"1-hour cache writes split out":                       "Hello from the fake upstream. You said: Short one",
		"max_tokens truncates":                                "Hello from the",
	}
	s := start(t, Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := call(t, s, "POST", "/v1/messages", keyHeaders(testKey), tc.body)
			if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Fatalf("status %d %s: %s", status, h.Get("Content-Type"), body)
			}
			var got messageReply
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.ID, "msg_") || got.Type != "message" || got.Role != "assistant" || got.StopSequence != nil {
				t.Errorf("envelope: %s", body)
			}
			if got.Model != tc.want.Model || got.StopReason != tc.want.StopReason || got.Usage != tc.want.Usage {
				t.Errorf("got model %q stop %q usage %+v, want %q %q %+v", got.Model, got.StopReason, got.Usage,
					tc.want.Model, tc.want.StopReason, tc.want.Usage)
			}
			if len(got.Content) != 1 || got.Content[0].Type != "text" || got.Content[0].Text != wantText[tc.name] {
				t.Errorf("content %+v, want text %q", got.Content, wantText[tc.name])
			}
			// Reply is what other packages use to predict the answer.
			ans, err := Reply([]byte(tc.body))
			if err != nil || ans.Usage != got.Usage || ans.Text != got.Content[0].Text {
				t.Errorf("Reply = %+v, %v; disagrees with the served answer", ans, err)
			}
		})
	}
}

func TestCountTokensAndModels(t *testing.T) {
	s := start(t, Options{})
	status, _, body := call(t, s, "POST", "/v1/messages/count_tokens", keyHeaders(testKey), simpleBody)
	ans, _ := Reply([]byte(simpleBody))
	if status != 200 || string(body) != `{"input_tokens":`+strconv.Itoa(ans.Usage.InputTokens)+`}` {
		t.Errorf("count_tokens: %d %s, want input_tokens %d", status, body, ans.Usage.InputTokens)
	}
	if s.MessageCount() != 0 {
		t.Errorf("count_tokens counted as a message")
	}

	status, _, body = call(t, s, "GET", "/v1/models", oauthHeaders(testAccess), "")
	var list struct {
		Data    []Model `json:"data"`
		HasMore *bool   `json:"has_more"`
		FirstID string  `json:"first_id"`
		LastID  string  `json:"last_id"`
	}
	if err := json.Unmarshal(body, &list); err != nil || status != 200 {
		t.Fatalf("models: %d %s %v", status, body, err)
	}
	if len(list.Data) == 0 || list.HasMore == nil || *list.HasMore ||
		list.FirstID != list.Data[0].ID || list.LastID != list.Data[len(list.Data)-1].ID {
		t.Fatalf("models list shape: %s", body)
	}
	for _, m := range list.Data {
		if m.Type != "model" || m.ID == "" || m.DisplayName == "" {
			t.Errorf("model entry %+v", m)
		}
		if _, err := time.Parse(time.RFC3339, m.CreatedAt); err != nil {
			t.Errorf("created_at %q: %v", m.CreatedAt, err)
		}
	}
	status, _, body = call(t, s, "GET", "/v1/models/"+list.Data[0].ID, keyHeaders(testKey), "")
	if status != 200 || !strings.Contains(string(body), list.Data[0].ID) {
		t.Errorf("single model: %d %s", status, body)
	}
	status, h, body := call(t, s, "GET", "/v1/nope", keyHeaders(testKey), "")
	checkError(t, status, h, body, 404, "not_found_error", "")
	status, h, body = call(t, s, "GET", "/v1/messages", keyHeaders(testKey), "")
	checkError(t, status, h, body, 405, "invalid_request_error", "")
}

func TestStatusFaults(t *testing.T) {
	const other = "sk-ant-api03-other"
	cases := []struct {
		name       string
		credential string
		fault      Fault
		requests   []string // credential of each request in order
		statuses   []int
		errType    string
		errMsg     string
		header     [2]string
	}{
		{
			name:       "429 with unified headers",
			credential: testKey,
			fault: Fault{Status: 429, Headers: map[string]string{
				"anthropic-ratelimit-unified-status": "rejected", "retry-after": "17"}},
			requests: []string{testKey, testKey},
			statuses: []int{429, 200},
			errType:  "rate_limit_error",
			header:   [2]string{"anthropic-ratelimit-unified-status", "rejected"},
		},
		{
			name:     "529 default overloaded",
			fault:    Fault{Status: 529},
			requests: []string{other},
			statuses: []int{529},
			errType:  "overloaded_error",
			errMsg:   "Overloaded",
			header:   [2]string{"x-should-retry", "true"},
		},
		{
			name:     "500 api_error twice",
			fault:    Fault{Status: 500, Times: 2},
			requests: []string{testKey, other, testKey},
			statuses: []int{500, 500, 200},
			errType:  "api_error",
		},
		{
			name:       "only the matching credential",
			credential: other,
			fault:      Fault{Status: 403, ErrorType: "permission_error", Message: "OAuth authentication is currently not allowed for this organization."},
			requests:   []string{testKey, other, other},
			statuses:   []int{200, 403, 200},
			errType:    "permission_error",
			errMsg:     "not allowed for this organization",
		},
		{
			name:     "count_tokens path only",
			fault:    Fault{Path: "/v1/messages/count_tokens", Status: 529},
			requests: []string{testKey},
			statuses: []int{200}, // the messages request does not consume it
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := start(t, Options{})
			s.AddAPIKey(other)
			s.InjectFault(tc.credential, tc.fault)
			for i, cred := range tc.requests {
				status, h, body := call(t, s, "POST", "/v1/messages", keyHeaders(cred), simpleBody)
				if status != tc.statuses[i] {
					t.Fatalf("request %d: status %d, want %d: %s", i, status, tc.statuses[i], body)
				}
				if status == 200 {
					continue
				}
				checkError(t, status, h, body, status, tc.errType, tc.errMsg)
				if tc.header[0] != "" && h.Get(tc.header[0]) != tc.header[1] {
					t.Errorf("header %s = %q, want %q", tc.header[0], h.Get(tc.header[0]), tc.header[1])
				}
			}
		})
	}
}

func TestRecordingAndReset(t *testing.T) {
	s := start(t, Options{})
	h := oauthHeaders(testAccess)
	h.Set("X-Claude-Code-Session-Id", "abc")
	call(t, s, "POST", "/v1/messages?beta=true", h, simpleBody)
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/v1/messages" || r.RawQuery != "beta=true" || r.Credential != testAccess ||
		string(r.Body) != simpleBody || r.Header.Get("X-Claude-Code-Session-Id") != "abc" {
		t.Errorf("recorded %+v", r)
	}
	reqs[0].Header.Set("X-Claude-Code-Session-Id", "changed")
	if s.Requests()[0].Header.Get("X-Claude-Code-Session-Id") != "abc" {
		t.Error("Requests returned shared headers")
	}
	s.Reset()
	if len(s.Requests()) != 0 || s.MessageCount() != 0 {
		t.Errorf("Reset kept recordings")
	}
	// Credentials survive a Reset.
	if status, _, _ := call(t, s, "POST", "/v1/messages", h, simpleBody); status != 200 {
		t.Errorf("after Reset: status %d", status)
	}
}
