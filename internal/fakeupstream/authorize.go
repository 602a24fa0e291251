package fakeupstream

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The authorization-code grant with PKCE, as Claude Code's login uses it:
// GET /oauth/authorize signs the caller in at once (there is no user to
// ask) and shows the code as the real callback page does, "CODE#STATE";
// the token endpoint then exchanges the code once, before it expires, for
// the verifier whose S256 is the challenge, and only for the redirect URI,
// client and state it was issued to.

const authorizePath = "/oauth/authorize"

// CodeTTL is how long an authorization code can be exchanged.
const CodeTTL = 10 * time.Minute

type authCode struct {
	challenge, redirectURI, clientID, state string
	expiresAt                               time.Time
	used                                    bool
}

// AuthorizeURL is the sign-in page of a started server.
func (s *Server) AuthorizeURL() string { return s.url + authorizePath }

// ExpireCodes makes every authorization code issued so far expired.
func (s *Server) ExpireCodes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.codes {
		c.expiresAt = time.Time{}
	}
}

// handleAuthorize serves the sign-in page: 400 for a request the real page
// refuses, else a page showing CODE#STATE.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("response_type") != "code":
		http.Error(w, "response_type must be code", http.StatusBadRequest)
		return
	case q.Get("client_id") != s.opts.ClientID:
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		http.Error(w, "PKCE with S256 is required", http.StatusBadRequest)
		return
	case q.Get("state") == "" || q.Get("redirect_uri") == "":
		http.Error(w, "state and redirect_uri are required", http.StatusBadRequest)
		return
	}
	code := randomText(40)
	s.mu.Lock()
	if s.codes == nil {
		s.codes = map[string]*authCode{}
	}
	s.codes[code] = &authCode{challenge: q.Get("code_challenge"), redirectURI: q.Get("redirect_uri"),
		clientID: q.Get("client_id"), state: q.Get("state"), expiresAt: s.clock.Now().Add(CodeTTL)}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	shown := html.EscapeString(code + "#" + q.Get("state"))
	_, _ = w.Write([]byte(`<!doctype html><title>Authentication Code</title><p>Paste this into Claude Code:</p><code id="code">` + shown + `</code>`))
}

// exchangeCode answers an authorization-code grant. A code is spent by its
// first exchange, whatever the outcome, as a single-use code must be.
func (s *Server) exchangeCode(w http.ResponseWriter, req tokenRequest) {
	if req.ClientID != s.opts.ClientID {
		tokenError(w, ErrInvalidClient, "")
		return
	}
	s.mu.Lock()
	c, ok := s.codes[req.Code]
	now := s.clock.Now()
	var refuse string
	switch {
	case !ok:
		refuse = "Invalid 'code' in request."
	case c.used:
		refuse = "Authorization code already used."
	case !now.Before(c.expiresAt):
		refuse = "Authorization code expired."
	case c.redirectURI != req.RedirectURI:
		refuse = "Invalid 'redirect_uri' in request."
	case c.state != req.State:
		refuse = "Invalid 'state' in request."
	case !verifies(req.CodeVerifier, c.challenge):
		refuse = "Invalid code verifier."
	}
	if ok {
		c.used = true
	}
	var resp TokenResponse
	if refuse == "" {
		resp = s.issueLocked()
	}
	s.mu.Unlock()
	if refuse != "" {
		tokenError(w, ErrInvalidGrant, refuse)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// verifies checks PKCE S256: BASE64URL(SHA256(verifier)) == challenge.
func verifies(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:]) == challenge
}

// issueLocked starts a new lineage (an account signed in) with a fresh
// access and refresh token. The caller holds s.mu.
func (s *Server) issueLocked() TokenResponse {
	id := len(s.lineages)
	access, refresh := "sk-ant-oat01-"+randomText(86)+"-AA", "sk-ant-ort01-"+randomText(86)+"-AA"
	l := lineage{access: access, refresh: refresh, orgUUID: uuidText(), accountUUID: uuidText(),
		email: "login" + strconv.Itoa(id) + "@fake.invalid"}
	s.lineages = append(s.lineages, l)
	s.access[access] = &accessToken{expiresAt: s.clock.Now().Add(s.opts.TokenTTL), lineage: id}
	s.refresh[refresh] = id
	s.lineageOf[refresh] = id
	resp := TokenResponse{TokenType: "Bearer", AccessToken: access, RefreshToken: refresh,
		ExpiresIn: int64(s.opts.TokenTTL.Seconds()), Scope: strings.Join([]string{"user:inference", "user:profile"}, " ")}
	resp.Organization.UUID, resp.Organization.Name = l.orgUUID, "Fake Organization"
	resp.Account.UUID, resp.Account.EmailAddress = l.accountUUID, l.email
	return resp
}
