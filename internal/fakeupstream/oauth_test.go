package fakeupstream

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
)

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

func refreshBody(refresh string) string {
	return jsonBody(map[string]string{"grant_type": "refresh_token", "refresh_token": refresh, "client_id": ClientID})
}

func refreshCall(t *testing.T, s *Server, refresh string) (int, TokenResponse, map[string]string) {
	t.Helper()
	status, _, body := call(t, s, "POST", tokenPath, jsonHeader, refreshBody(refresh))
	var ok TokenResponse
	var bad map[string]string
	if status == 200 {
		if err := json.Unmarshal(body, &ok); err != nil {
			t.Fatalf("token answer %s: %v", body, err)
		}
	} else {
		_ = json.Unmarshal(body, &bad)
	}
	return status, ok, bad
}

func TestTokenRotation(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := start(t, Options{Clock: fc, TokenTTL: time.Hour})
	if s.TokenURL() != s.URL()+"/v1/oauth/token" {
		t.Fatalf("TokenURL %q", s.TokenURL())
	}

	status, tok, _ := refreshCall(t, s, testRefesh)
	if status != 200 {
		t.Fatalf("refresh: %d", status)
	}
	if !strings.HasPrefix(tok.AccessToken, "sk-ant-oat01-") || !strings.HasPrefix(tok.RefreshToken, "sk-ant-ort01-") ||
		tok.RefreshToken == testRefesh || tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 ||
		tok.Scope != "user:inference user:profile" || tok.Organization.UUID == "" || tok.Account.EmailAddress == "" {
		t.Fatalf("token answer %+v", tok)
	}
	if s.RefreshLive(testRefesh) || !s.RefreshLive(tok.RefreshToken) {
		t.Error("the used refresh token must die and the new one live")
	}
	if a, r, ok := s.CurrentTokens(testRefesh); !ok || a != tok.AccessToken || r != tok.RefreshToken {
		t.Errorf("CurrentTokens(old) = %q %q %v", a, r, ok)
	}

	// The used refresh token is rejected from now on.
	status, _, bad := refreshCall(t, s, testRefesh)
	if status != 400 || bad["error"] != ErrInvalidGrant || bad["error_description"] != "Refresh token not found or invalid" {
		t.Errorf("reuse: %d %v", status, bad)
	}

	// Both the new and the old access token work until their own expiry.
	for _, access := range []string{tok.AccessToken, testAccess} {
		if status, _, body := call(t, s, "POST", "/v1/messages", oauthHeaders(access), simpleBody); status != 200 {
			t.Errorf("access %s…: %d %s", access[:16], status, body)
		}
	}
	fc.Advance(time.Hour)
	status, h, body := call(t, s, "POST", "/v1/messages", oauthHeaders(tok.AccessToken), simpleBody)
	checkError(t, status, h, body, 401, "authentication_error", MsgTokenExpired)

	// The account stays the same across rotations.
	_, tok2, _ := refreshCall(t, s, tok.RefreshToken)
	if tok2.Account.UUID != tok.Account.UUID || tok2.Organization.UUID != tok.Organization.UUID {
		t.Errorf("account changed across rotations: %+v vs %+v", tok2.Account, tok.Account)
	}
	if s.TokenCalls() != 3 {
		t.Errorf("TokenCalls %d, want 3", s.TokenCalls())
	}
}

func TestTokenRequestErrors(t *testing.T) {
	s := start(t, Options{})
	cases := []struct {
		name   string
		header http.Header
		body   string
		code   string
	}{
		{"form encoded", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			"grant_type=refresh_token&refresh_token=" + testRefesh + "&client_id=" + ClientID, ErrInvalidRequest},
		{"json body without content type", http.Header{}, refreshBody(testRefesh), ErrInvalidRequest},
		{"broken json", jsonHeader, `{"grant_type":`, ErrInvalidRequest},
		{"wrong grant type", jsonHeader, jsonBody(map[string]string{"grant_type": "client_credentials", "refresh_token": testRefesh, "client_id": ClientID}), ErrUnsupportedGrantType},
		{"wrong client id", jsonHeader, jsonBody(map[string]string{"grant_type": "refresh_token", "refresh_token": testRefesh, "client_id": "someone-else"}), ErrInvalidClient},
		{"unknown refresh token", jsonHeader, refreshBody("sk-ant-ort01-unknown"), ErrInvalidGrant},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := call(t, s, "POST", tokenPath, tc.header, tc.body)
			var got map[string]string
			if err := json.Unmarshal(body, &got); err != nil || status != 400 || got["error"] != tc.code {
				t.Errorf("got %d %s, want 400 %s", status, body, tc.code)
			}
		})
	}
	// None of the rejected calls consumed the live refresh token.
	if !s.RefreshLive(testRefesh) {
		t.Error("a rejected call killed the refresh token")
	}
	if s.TokenCalls() != len(cases) {
		t.Errorf("TokenCalls %d, want %d", s.TokenCalls(), len(cases))
	}
}

func TestConcurrentRefreshOneWinner(t *testing.T) {
	const racers = 8
	s := start(t, Options{})
	// Delay every call so that all of them are inside the endpoint together.
	s.InjectTokenFault(TokenFault{Delay: 20 * time.Millisecond, Times: racers})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		grants   int
		winner   TokenResponse
	)
	for range racers {
		wg.Go(func() {
			status, tok, bad := refreshCall(t, s, testRefesh)
			mu.Lock()
			defer mu.Unlock()
			statuses[status]++
			if status == 200 {
				winner = tok
			}
			if bad["error"] == ErrInvalidGrant {
				grants++
			}
		})
	}
	wg.Wait()
	if statuses[200] != 1 || statuses[400] != racers-1 || grants != racers-1 {
		t.Fatalf("statuses %v, invalid_grant %d; want exactly one winner", statuses, grants)
	}
	if _, r, _ := s.CurrentTokens(testRefesh); r != winner.RefreshToken {
		t.Errorf("live refresh token %q is not the winner's", r)
	}
}

func TestTokenFaults(t *testing.T) {
	s := start(t, Options{})
	s.InjectTokenFault(TokenFault{Status: 429, RetryAfter: 30})
	s.InjectTokenFault(TokenFault{Status: 500, Body: `{"error":"server_error"}`})

	status, h, body := call(t, s, "POST", tokenPath, jsonHeader, refreshBody(testRefesh))
	if status != 429 || h.Get("Retry-After") != "30" {
		t.Errorf("first call: %d Retry-After %q", status, h.Get("Retry-After"))
	}
	checkError(t, status, h, body, 429, "rate_limit_error", "")

	status, _, body = call(t, s, "POST", tokenPath, jsonHeader, refreshBody(testRefesh))
	if status != 500 || string(body) != `{"error":"server_error"}` {
		t.Errorf("second call: %d %s", status, body)
	}
	// Faulted calls did not rotate: the original refresh token still works.
	if status, _, _ := refreshCall(t, s, testRefesh); status != 200 {
		t.Errorf("after faults: %d", status)
	}
	if s.TokenCalls() != 3 {
		t.Errorf("TokenCalls %d", s.TokenCalls())
	}
}
