// Package login adds a subscription account without copying files: the
// OAuth authorization-code flow with PKCE that Claude Code's own login
// runs. Start makes the sign-in URL (code_challenge, state) and keeps the
// verifier in the store for TTL, so any replica can finish it; the
// operator signs in and pastes back the code the callback page shows,
// CODE#STATE; Finish exchanges it at the token endpoint (a JSON POST, as
// the endpoint takes nothing else) and returns the tokens. Writing the
// account file is the caller's.
package login

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/claude-route/claude-route/internal/clock"
)

// Defaults of Config: Claude Code's own values (docs: UPSTREAM.md).
const (
	DefaultAuthorizeURL = "https://claude.ai/oauth/authorize"
	DefaultRedirectURI  = "https://platform.claude.com/oauth/code/callback"
	DefaultScopes       = "org:create_api_key user:profile user:inference"
	DefaultTTL          = 10 * time.Minute
)

// keyPrefix + state: a started login (verifier, tier, name), until TTL.
const keyPrefix = "cr:login:"

// Errors of Finish; each message says what to do.
var (
	ErrBadCode       = errors.New("paste the whole code the sign-in page shows, CODE#STATE")
	ErrStateMismatch = errors.New("state mismatch: the pasted code comes from another sign-in, not this login's URL")
	ErrNoLogin       = errors.New("no login in progress with this id: it finished, or it expired; start again")
	// ErrCodeRefused: the token endpoint refused the code (invalid_grant).
	ErrCodeRefused = errors.New("the sign-in code was refused: wrong, expired (codes live minutes) or already used (a code works once); sign in again")
)

// Config says where the flow signs in and exchanges codes.
type Config struct {
	AuthorizeURL string // OAUTH_AUTHORIZE_URL
	TokenURL     string // OAUTH_TOKEN_URL
	ClientID     string // OAUTH_CLIENT_ID
	RedirectURI  string // the page that shows CODE#STATE
	Scopes       string // space-separated
	// TTL is how long a started login waits for its code.
	TTL   time.Duration
	HTTP  *http.Client // nil: a client with a 30 s timeout
	Clock clock.Clock  // nil: the wall clock
}

// Flow runs logins; it keeps no state of its own (the store does).
type Flow struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns a Flow whose started logins live in rdb.
func New(rdb redis.UniversalClient, cfg Config) *Flow {
	if cfg.AuthorizeURL == "" {
		cfg.AuthorizeURL = DefaultAuthorizeURL
	}
	if cfg.RedirectURI == "" {
		cfg.RedirectURI = DefaultRedirectURI
	}
	if cfg.Scopes == "" {
		cfg.Scopes = DefaultScopes
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.HTTP == nil {
		// No redirects: the body carries the code and the verifier.
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Flow{rdb: rdb, cfg: cfg}
}

// Started is a login waiting for its code. ID is its state.
type Started struct {
	ID           string    `json:"login"`
	AuthorizeURL string    `json:"authorize_url"`
	Tier         string    `json:"tier"`
	Name         string    `json:"name"`
	ExpiresAt    time.Time `json:"expires_at"`
}

type kept struct {
	Verifier string `json:"verifier"`
	Tier     string `json:"tier"`
	Name     string `json:"name"`
}

// Tokens are what a finished login got.
type Tokens struct {
	AccessToken, RefreshToken string
	ExpiresAt                 time.Time
	Scopes                    []string
}

func (f *Flow) oauth() oauth2.Config {
	return oauth2.Config{ClientID: f.cfg.ClientID, RedirectURL: f.cfg.RedirectURI, Scopes: strings.Fields(f.cfg.Scopes),
		Endpoint: oauth2.Endpoint{AuthURL: f.cfg.AuthorizeURL, TokenURL: f.cfg.TokenURL}}
}

// Start makes a login for the account tier/name: its sign-in URL carries
// the S256 code_challenge of a fresh verifier and a fresh state.
func (f *Flow) Start(ctx context.Context, tier, name string) (Started, error) {
	verifier := oauth2.GenerateVerifier()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Started{}, fmt.Errorf("login state: %w", err)
	}
	state := base64.RawURLEncoding.EncodeToString(b[:])
	oc := f.oauth()
	// code=true asks the sign-in page to show the code rather than redirect
	// to a local listener, as Claude Code's login does.
	u := oc.AuthCodeURL(state, oauth2.SetAuthURLParam("code", "true"), oauth2.S256ChallengeOption(verifier))
	v, _ := json.Marshal(kept{Verifier: verifier, Tier: tier, Name: name})
	if err := f.rdb.Set(ctx, keyPrefix+state, v, f.cfg.TTL).Err(); err != nil {
		return Started{}, fmt.Errorf("keep the login: %w", err)
	}
	return Started{ID: state, AuthorizeURL: u, Tier: tier, Name: name, ExpiresAt: f.cfg.Clock.Now().Add(f.cfg.TTL).UTC()}, nil
}

// Finish exchanges the pasted CODE#STATE of login id. The login stays
// open after a refused code (a mistyped paste can be corrected) and ends
// with a good one.
func (f *Flow) Finish(ctx context.Context, id, pasted string) (Started, Tokens, error) {
	code, state, ok := strings.Cut(strings.TrimSpace(pasted), "#")
	if !ok || code == "" || state == "" || strings.ContainsAny(code, " \t\r\n") {
		return Started{}, Tokens{}, ErrBadCode
	}
	if state != id {
		return Started{}, Tokens{}, ErrStateMismatch
	}
	raw, err := f.rdb.Get(ctx, keyPrefix+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return Started{}, Tokens{}, ErrNoLogin
	}
	if err != nil {
		return Started{}, Tokens{}, fmt.Errorf("read the login: %w", err)
	}
	var k kept
	if err := json.Unmarshal(raw, &k); err != nil {
		return Started{}, Tokens{}, fmt.Errorf("read the login: %w", err)
	}
	st := Started{ID: id, Tier: k.Tier, Name: k.Name}
	tok, err := f.exchange(ctx, code, state, k.Verifier)
	if err != nil {
		return st, Tokens{}, err
	}
	if err := f.rdb.Del(ctx, keyPrefix+id).Err(); err != nil {
		return st, Tokens{}, fmt.Errorf("end the login: %w", err)
	}
	return st, tok, nil
}

// exchange does the authorization_code grant.
func (f *Flow) exchange(ctx context.Context, code, state, verifier string) (Tokens, error) {
	body, _ := json.Marshal(map[string]string{
		"grant_type": "authorization_code", "code": code, "state": state, "client_id": f.cfg.ClientID,
		"redirect_uri": f.cfg.RedirectURI, "code_verifier": verifier,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.TokenURL, bytes.NewReader(body))
	if err != nil {
		return Tokens{}, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := f.cfg.HTTP.Do(req)
	if err != nil {
		return Tokens{}, fmt.Errorf("token endpoint: %w", err) // names the URL only; the code is in the body
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Tokens{}, fmt.Errorf("token endpoint: read answer: %w", err)
	}
	var ans struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		Scope        string `json:"scope"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	_ = json.Unmarshal(raw, &ans)
	if resp.StatusCode != http.StatusOK || ans.AccessToken == "" {
		if ans.Error == "invalid_grant" {
			return Tokens{}, fmt.Errorf("%w (%s)", ErrCodeRefused, clean(ans.Description))
		}
		return Tokens{}, fmt.Errorf("token endpoint: HTTP %d %s", resp.StatusCode, clean(ans.Error))
	}
	t := Tokens{AccessToken: ans.AccessToken, RefreshToken: ans.RefreshToken, Scopes: strings.Fields(ans.Scope)}
	if ans.ExpiresIn > 0 {
		t.ExpiresAt = f.cfg.Clock.Now().Add(time.Duration(ans.ExpiresIn) * time.Second)
	}
	return t, nil
}

// clean keeps an endpoint's error text short and printable.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// File is the account file of t, in the Claude Code credentials format
// the loader reads. A token with no refresh token (a long-lived setup
// token) is written as one: it is never refreshed.
func File(t Tokens) []byte {
	o := map[string]any{"accessToken": t.AccessToken}
	if t.RefreshToken != "" {
		o["refreshToken"] = t.RefreshToken
	}
	if !t.ExpiresAt.IsZero() {
		o["expiresAt"] = t.ExpiresAt.UnixMilli()
	}
	if len(t.Scopes) > 0 {
		o["scopes"] = t.Scopes
	}
	b, _ := json.Marshal(map[string]any{"claudeAiOauth": o})
	return b
}
