package fakeupstream

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The beta flag without which the API refuses OAuth bearer tokens.
const oauthBeta = "oauth-2025-04-20"

// Messages the real API uses for authentication failures; the proxy
// matches on some of them (expired → refresh, not blacklist).
const (
	MsgOAuthNotSupported = "OAuth authentication is currently not supported."
	MsgTokenExpired      = "OAuth token has expired. Please obtain a new token or refresh your existing token."
	MsgInvalidBearer     = "Invalid bearer token"
	MsgInvalidAPIKey     = "invalid x-api-key"
	MsgMissingAPIKey     = "x-api-key header is required"
)

type accessToken struct {
	expiresAt time.Time
	expired   bool // forced by ExpireAccess, whatever the clock says
	revoked   bool
	lineage   int
}

// lineage is one OAuth account: every pair issued by rotating a refresh
// token belongs to the lineage of the token it replaced.
type lineage struct {
	access, refresh string // the newest pair
	orgUUID         string
	accountUUID     string
	email           string
}

// AddAPIKey registers an API key accepted in x-api-key.
func (s *Server) AddAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiKeys[key] = true
}

// AddOAuth registers a live OAuth pair (a new account). refresh may be ""
// for an access token that cannot be refreshed.
func (s *Server) AddOAuth(access, refresh string, expiresAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := len(s.lineages)
	s.lineages = append(s.lineages, lineage{
		access:      access,
		refresh:     refresh,
		orgUUID:     uuidText(),
		accountUUID: uuidText(),
		email:       "account" + strconv.Itoa(id) + "@fake.invalid",
	})
	s.access[access] = &accessToken{expiresAt: expiresAt, lineage: id}
	if refresh != "" {
		s.refresh[refresh] = id
		s.lineageOf[refresh] = id
	}
}

// ExpireAccess makes an access token expired from now on.
func (s *Server) ExpireAccess(access string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.access[access]; ok {
		t.expired = true
	}
}

// RevokeAccess makes an access token invalid (401 "Invalid bearer token").
func (s *Server) RevokeAccess(access string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.access[access]; ok {
		t.revoked = true
	}
}

// AccessValid reports whether a bearer token would be accepted now.
func (s *Server) AccessValid(access string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[access]
	return ok && !t.revoked && s.liveLocked(t)
}

// RefreshLive reports whether a refresh token can still be used.
func (s *Server) RefreshLive(refresh string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.refresh[refresh]
	return ok
}

// CurrentTokens returns the newest pair of the account that refresh ever
// belonged to (it may itself be rotated away already), so a test can check
// that the proxy stored what the upstream last issued.
func (s *Server) CurrentTokens(refresh string) (access, newRefresh string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.lineageOf[refresh]
	if !ok {
		return "", "", false
	}
	l := s.lineages[id]
	return l.access, l.refresh, true
}

func (s *Server) liveLocked(t *accessToken) bool {
	return !t.expired && s.clock.Now().Before(t.expiresAt)
}

type credKind int

const (
	credNone credKind = iota
	credAPIKey
	credBearer
)

// credentialOf extracts the credential. x-api-key wins when both are sent,
// so a proxy that leaks a client's key next to the account's bearer gets a
// 401 instead of silently passing.
func credentialOf(h http.Header) (string, credKind) {
	if k := h.Get("x-api-key"); k != "" {
		return k, credAPIKey
	}
	a := h.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:]), credBearer
	}
	return "", credNone
}

// authInfo is what a successful authentication tells the handlers.
type authInfo struct {
	credential string
	oauth      bool
}

// authenticate applies the real API's rules in its order: credential, then
// the OAuth beta flag, then token validity, then anthropic-version.
func (s *Server) authenticate(h http.Header) (authInfo, *apiError) {
	cred, kind := credentialOf(h)
	switch kind {
	case credNone:
		return authInfo{}, &apiError{http.StatusUnauthorized, "authentication_error", MsgMissingAPIKey}
	case credAPIKey:
		s.mu.Lock()
		ok := s.apiKeys[cred]
		s.mu.Unlock()
		if !ok {
			return authInfo{}, &apiError{http.StatusUnauthorized, "authentication_error", MsgInvalidAPIKey}
		}
	case credBearer:
		if !hasBeta(h, oauthBeta) {
			return authInfo{}, &apiError{http.StatusUnauthorized, "authentication_error", MsgOAuthNotSupported}
		}
		s.mu.Lock()
		t, ok := s.access[cred]
		known := ok && !t.revoked
		live := known && s.liveLocked(t)
		s.mu.Unlock()
		if !known {
			return authInfo{}, &apiError{http.StatusUnauthorized, "authentication_error", MsgInvalidBearer}
		}
		if !live {
			return authInfo{}, &apiError{http.StatusUnauthorized, "authentication_error", MsgTokenExpired}
		}
	}
	if h.Get("anthropic-version") == "" {
		return authInfo{}, &apiError{http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required"}
	}
	return authInfo{credential: cred, oauth: kind == credBearer}, nil
}

// hasBeta reports whether the comma-separated anthropic-beta header(s)
// contain flag.
func hasBeta(h http.Header, flag string) bool {
	for _, v := range h.Values("anthropic-beta") {
		for _, f := range strings.Split(v, ",") {
			if strings.TrimSpace(f) == flag {
				return true
			}
		}
	}
	return false
}

// apiError is an error answer in Anthropic's shape.
type apiError struct {
	status       int
	typ, message string
}

// defaultErrorType maps a status to the error type the API uses for it.
func defaultErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 504:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	default:
		return "api_error"
	}
}

func defaultErrorMessage(status int) string {
	switch status {
	case 401:
		return MsgInvalidAPIKey
	case 403:
		return "Your credit balance is too low to access the Anthropic API."
	case 429:
		return "This request would exceed your account's rate limit. Please try again later."
	case 500:
		return "Internal server error"
	case 504:
		return "Request timed out"
	case 529:
		return "Overloaded"
	default:
		return http.StatusText(status)
	}
}

// writeError answers with Anthropic's error JSON; request_id matches the
// request-id header set by ServeHTTP.
func writeError(w http.ResponseWriter, status int, typ, message string) {
	writeJSON(w, status, map[string]any{
		"type":       "error",
		"error":      map[string]string{"type": typ, "message": message},
		"request_id": w.Header().Get("request-id"),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own map/struct literals reach here
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// uuidText returns a random version-4 UUID.
func uuidText() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
