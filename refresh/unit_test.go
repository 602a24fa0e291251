package refresh

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	now := t0
	lead, spacing := time.Minute, 65*time.Second
	at := func(d time.Duration) time.Time { return now.Add(d) }
	tests := []struct {
		name   string
		global time.Time
		items  []planItem
		want   map[string]time.Time
	}{
		{
			name:  "spread expiries refresh Lead before each",
			items: []planItem{{name: "a", expires: at(time.Hour)}, {name: "b", expires: at(2 * time.Hour)}},
			want:  map[string]time.Time{"a": at(59 * time.Minute), "b": at(119 * time.Minute)},
		},
		{
			name: "same expiry: walked back spacing apart, all before expiry",
			items: []planItem{
				{name: "c", expires: at(time.Hour)}, {name: "a", expires: at(time.Hour)}, {name: "b", expires: at(time.Hour)},
			},
			want: map[string]time.Time{
				"a": at(59*time.Minute - 2*spacing), "b": at(59*time.Minute - spacing), "c": at(59 * time.Minute),
			},
		},
		{
			name:  "close expiries push the earlier one back",
			items: []planItem{{name: "a", expires: at(time.Hour)}, {name: "b", expires: at(time.Hour + 10*time.Second)}},
			want:  map[string]time.Time{"a": at(59*time.Minute + 10*time.Second - spacing), "b": at(59*time.Minute + 10*time.Second)},
		},
		{
			name:  "overdue accounts start now, spaced",
			items: []planItem{{name: "a", expires: at(-time.Hour)}, {name: "b", expires: at(-time.Hour)}},
			want:  map[string]time.Time{"a": now, "b": at(spacing)},
		},
		{
			name:   "the global lock pushes the first slot",
			global: at(30 * time.Second),
			items:  []planItem{{name: "a", expires: at(time.Minute)}},
			want:   map[string]time.Time{"a": at(30 * time.Second)},
		},
		{
			name:  "a cooldown delays only its account",
			items: []planItem{{name: "a", expires: at(time.Hour), notBefore: at(2 * time.Hour)}, {name: "b", expires: at(3 * time.Hour)}},
			want:  map[string]time.Time{"a": at(2 * time.Hour), "b": at(179 * time.Minute)},
		},
		{name: "no accounts", want: map[string]time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(now, tc.global, tc.items, lead, spacing)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d slots, want %d", len(got), len(tc.want))
			}
			for name, w := range tc.want {
				if !got[name].Equal(w) {
					t.Errorf("%s: slot %s, want %s", name, got[name].Sub(now), w.Sub(now))
				}
			}
		})
	}
}

func TestEndpointErrorClassification(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		body       string
		definitive bool
		limited    bool
		wait       time.Duration
		code       string
	}{
		{name: "invalid_grant", status: 400, body: `{"error":"invalid_grant","error_description":"Refresh token not found or invalid"}`, definitive: true, code: "invalid_grant"},
		{name: "other 400 is not definitive", status: 400, body: `{"error":"invalid_request"}`, code: "invalid_request"},
		{name: "organisation not allowed", status: 403, body: `{"type":"error","error":{"type":"permission_error","message":"OAuth authentication is currently not allowed for this organization."}}`, definitive: true, code: "permission_error"},
		{name: "organisation disabled", status: 400, body: `{"type":"error","error":{"type":"invalid_request_error","message":"This organization has been disabled."}}`, definitive: true, code: "invalid_request_error"},
		{name: "429 seconds", status: 429, retryAfter: "120", limited: true, wait: 2 * time.Minute},
		{name: "429 http date", status: 429, retryAfter: t0.Add(90 * time.Second).Format(http.TimeFormat), limited: true, wait: 90 * time.Second},
		{name: "429 garbage retry-after", status: 429, retryAfter: "soon", limited: true},
		{name: "500 without body", status: 500},
		{name: "a token echoed as the code is dropped", status: 400, body: `{"error":"sk-ant-ort01-abcdef"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := endpointError(tc.status, tc.retryAfter, []byte(tc.body), t0)
			var err error = e
			if errors.Is(err, ErrInvalidGrant) != tc.definitive {
				t.Errorf("definitive = %v, want %v", !tc.definitive, tc.definitive)
			}
			if errors.Is(err, ErrRateLimited) != tc.limited {
				t.Errorf("rate limited = %v, want %v", !tc.limited, tc.limited)
			}
			if e.RetryAfter != tc.wait {
				t.Errorf("RetryAfter = %s, want %s", e.RetryAfter, tc.wait)
			}
			if e.Code != tc.code {
				t.Errorf("Code = %q, want %q", e.Code, tc.code)
			}
			if strings.Contains(err.Error(), "sk-ant-") {
				t.Errorf("error text carries a token: %q", err.Error())
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.TokenURL != DefaultTokenURL || c.ClientID != "9d1c250a-e61b-44d9-88ed-5944d1962f5e" ||
		c.Lead != time.Minute || c.GlobalLock != 60*time.Second || c.Cooldown != 3*time.Minute ||
		c.MaxAttempts != 3 || c.AttemptWindow != 24*time.Hour || c.Clock == nil || c.Logger == nil || c.HTTPClient == nil {
		t.Fatalf("defaults: %+v", c)
	}
	if c.callTimeout() >= c.LockExpiry {
		t.Fatalf("the work under the lock must end before the lock expires")
	}
}
