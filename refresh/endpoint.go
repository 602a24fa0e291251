package refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// fallbackTTL is assumed when the endpoint omits expires_in. The refresh
// token has already rotated by then, so the answer must be kept; a short
// life makes the next refresh come early rather than too late.
const fallbackTTL = time.Hour

// maxAnswer bounds what we read from the token endpoint.
const maxAnswer = 1 << 20

// EndpointError is a non-2xx answer of the token endpoint. It never holds
// token material: only the status, a sanitised error code and Retry-After.
type EndpointError struct {
	Status     int
	Code       string        // OAuth "error" or Anthropic error type, sanitised
	RetryAfter time.Duration // from a 429's Retry-After, 0 if absent
	definitive bool          // the account can never refresh again as it is
	reason     string        // why it is definitive, for the blacklist
}

func (e *EndpointError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("token endpoint: HTTP %d", e.Status)
	}
	return fmt.Sprintf("token endpoint: HTTP %d %s", e.Status, e.Code)
}

// Is makes errors.Is(err, ErrInvalidGrant) true for definitive rejections
// and errors.Is(err, ErrRateLimited) true for a 429.
func (e *EndpointError) Is(target error) bool {
	switch target {
	case ErrInvalidGrant:
		return e.definitive
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	}
	return false
}

// exchange does one refresh_token grant. It is our own JSON POST: the
// endpoint rejects the form body that x/oauth2's exchange would send.
func (r *Refresher) exchange(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	body, err := json.Marshal(map[string]string{
		"grant_type":    "refresh_token",
		"refresh_token": refreshToken,
		"client_id":     r.cfg.ClientID,
	})
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.TokenURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		// *url.Error names the URL only; the token travels in the body.
		return nil, fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("token endpoint: read answer: %w", err)
	}
	now := r.clk.Now()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, endpointError(resp.StatusCode, resp.Header.Get("Retry-After"), raw, now)
	}
	var ans struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		TokenType    string `json:"token_type"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("%w: undecodable JSON", ErrBadAnswer)
	}
	if ans.AccessToken == "" {
		return nil, fmt.Errorf("%w: no access_token", ErrBadAnswer)
	}
	if ans.RefreshToken == "" {
		ans.RefreshToken = refreshToken // the endpoint did not rotate it
	}
	ttl := time.Duration(ans.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = fallbackTTL
	}
	return &oauth2.Token{
		AccessToken:  ans.AccessToken,
		RefreshToken: ans.RefreshToken,
		TokenType:    ans.TokenType,
		Expiry:       now.Add(ttl).Truncate(time.Millisecond), // the store keeps milliseconds
	}, nil
}

// endpointError classifies a failed answer. 400 invalid_grant, and an
// organisation refused OAuth or disabled (400/403), are definitive.
func endpointError(status int, retryAfter string, raw []byte, now time.Time) *EndpointError {
	e := &EndpointError{Status: status}
	var ans struct {
		Error            json.RawMessage `json:"error"`
		ErrorDescription string          `json:"error_description"`
	}
	var message string
	if json.Unmarshal(raw, &ans) == nil && len(ans.Error) > 0 {
		var code string
		var obj struct{ Type, Message string }
		if json.Unmarshal(ans.Error, &code) == nil {
			e.Code = sanitize(code)
		} else if json.Unmarshal(ans.Error, &obj) == nil {
			e.Code = sanitize(obj.Type)
			message = obj.Message
		}
		message += " " + ans.ErrorDescription
	}
	msg := strings.ToLower(message)
	switch {
	case status == http.StatusBadRequest && e.Code == "invalid_grant":
		e.definitive, e.reason = true, "oauth refresh rejected: invalid_grant"
	case (status == http.StatusBadRequest || status == http.StatusForbidden) &&
		strings.Contains(msg, "not allowed for this organization"):
		e.definitive, e.reason = true, "oauth refresh rejected: OAuth not allowed for this organization"
	case (status == http.StatusBadRequest || status == http.StatusForbidden) &&
		strings.Contains(msg, "organization") && strings.Contains(msg, "disabled"):
		e.definitive, e.reason = true, "oauth refresh rejected: organization disabled"
	}
	if status == http.StatusTooManyRequests {
		e.RetryAfter = parseRetryAfter(retryAfter, now)
	}
	return e
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sanitize keeps a short code made of safe characters, so that nothing
// the endpoint echoes (a token, say) can reach an error or a log line.
func sanitize(s string) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= 64 {
			break
		}
		if c == '_' || c == '-' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		}
	}
	if strings.HasPrefix(b.String(), "sk-") {
		return "" // looks like a credential: drop it
	}
	return b.String()
}
