package fakeupstream

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
)

const tokenPath = "/v1/oauth/token"

// Token endpoint error codes (RFC 6749 §5.2), as the real endpoint sends them.
const (
	ErrInvalidRequest       = "invalid_request"
	ErrInvalidClient        = "invalid_client"
	ErrInvalidGrant         = "invalid_grant"
	ErrUnsupportedGrantType = "unsupported_grant_type"
)

// TokenResponse is a successful answer of the token endpoint.
type TokenResponse struct {
	TokenType    string `json:"token_type"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	Organization struct {
		UUID string `json:"uuid"`
		Name string `json:"name"`
	} `json:"organization"`
	Account struct {
		UUID         string `json:"uuid"`
		EmailAddress string `json:"email_address"`
	} `json:"account"`
}

// tokenRequest is the JSON body of either grant.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	RefreshToken string `json:"refresh_token"`
	ClientID     string `json:"client_id"`
	// The authorization-code grant (authorize.go).
	Code         string `json:"code"`
	State        string `json:"state"`
	RedirectURI  string `json:"redirect_uri"`
	CodeVerifier string `json:"code_verifier"`
}

// handleToken serves POST /v1/oauth/token: refresh-token grants with a
// JSON body, rotating the refresh token on every success, and
// authorization-code grants (authorize.go).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	s.tokenCalls++
	s.mu.Unlock()

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "Method Not Allowed")
		return
	}
	if f, ok := s.takeTokenFault(); ok {
		if err := s.sleep(r.Context(), f.Delay); err != nil {
			s.stop(w, err)
			return
		}
		if f.Status != 0 {
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			}
			if f.Body == "" {
				writeError(w, f.Status, defaultErrorType(f.Status), defaultErrorMessage(f.Status))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			_, _ = w.Write([]byte(f.Body))
			return
		}
	}

	// The real endpoint only takes JSON; a form-encoded body (what
	// golang.org/x/oauth2 sends by default) is a 400.
	var req tokenRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" || json.Unmarshal(body, &req) != nil {
		tokenError(w, ErrInvalidRequest, "Invalid request format")
		return
	}
	if req.GrantType == "authorization_code" {
		s.exchangeCode(w, req)
		return
	}
	if req.GrantType != "refresh_token" {
		tokenError(w, ErrUnsupportedGrantType, "Unsupported grant type")
		return
	}
	if req.ClientID != s.opts.ClientID {
		tokenError(w, ErrInvalidClient, "")
		return
	}
	resp, ok := s.rotate(req.RefreshToken)
	if !ok {
		tokenError(w, ErrInvalidGrant, "Refresh token not found or invalid")
		return
	}
	if s.opts.Logf != nil {
		s.opts.Logf("fakeupstream: refresh token rotated")
	}
	writeJSON(w, http.StatusOK, resp)
}

// rotate atomically retires refresh and issues a new pair, so of two
// concurrent refreshes with one token exactly one wins.
func (s *Server) rotate(refresh string) (TokenResponse, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.refresh[refresh]
	if !ok {
		return TokenResponse{}, false
	}
	delete(s.refresh, refresh)
	access, next := "sk-ant-oat01-"+randomText(86)+"-AA", "sk-ant-ort01-"+randomText(86)+"-AA"
	s.access[access] = &accessToken{expiresAt: s.clock.Now().Add(s.opts.TokenTTL), lineage: id}
	s.refresh[next] = id
	s.lineageOf[next] = id
	l := &s.lineages[id]
	l.access, l.refresh = access, next

	resp := TokenResponse{
		TokenType:    "Bearer",
		AccessToken:  access,
		RefreshToken: next,
		ExpiresIn:    int64(s.opts.TokenTTL.Seconds()),
		Scope:        "user:inference user:profile",
	}
	resp.Organization.UUID, resp.Organization.Name = l.orgUUID, "Fake Organization"
	resp.Account.UUID, resp.Account.EmailAddress = l.accountUUID, l.email
	return resp, true
}

func tokenError(w http.ResponseWriter, code, description string) {
	body := map[string]string{"error": code}
	if description != "" {
		body["error_description"] = description
	}
	writeJSON(w, http.StatusBadRequest, body)
}
