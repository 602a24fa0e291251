// Package accounts owns the upstream accounts: their files under
// ACCOUNT_DIR/<tier>/<name>.json, their credentials in Redis, and the pool
// that binds client keys to them (slots, blacklist, upstream limits).
package accounts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Kind tells how an account authenticates upstream.
type Kind string

// The two credential shapes of docs/contract.md.
const (
	OAuth  Kind = "oauth"
	APIKey Kind = "apikey"
)

// Account is one upstream account. Its String form never shows a secret.
type Account struct {
	Name, Tier string
	Kind       Kind
	// OAuth credentials.
	AccessToken, RefreshToken string
	ExpiresAt                 time.Time
	// API key credential.
	APIKey string
	// BaseURLs, tried in order; empty means the configured default upstream.
	BaseURLs []string
	// Path is the file the account was loaded from.
	Path string
	// MaxConcurrency is the file's "max_concurrency": the most requests in
	// flight on the account at once, per replica; 0 means the tier's
	// default (account_concurrency).
	MaxConcurrency int
	// Disabled is the file's "disabled": true: the operator took the
	// account out of service without deleting it (sync blacklists it with
	// the reason DisabledReason).
	Disabled bool
}

// String names the account without its credentials, so that %v and %+v
// in a log line cannot leak a token.
func (a Account) String() string { return fmt.Sprintf("account(%s/%s, %s)", a.Tier, a.Name, a.Kind) }

// GoString is String, for %#v.
func (a Account) GoString() string { return a.String() }

// Credential is the secret used upstream: the access token or the API key.
func (a Account) Credential() string {
	if a.Kind == OAuth {
		return a.AccessToken
	}
	return a.APIKey
}

// SetupToken reports a long-lived OAuth token without a refresh token
// (what `claude setup-token` prints, an sk-ant-oat01-… valid for about a
// year): it is never refreshed, and an alert comes a week before its
// expiresAt.
func (a Account) SetupToken() bool {
	return a.Kind == OAuth && a.RefreshToken == "" && a.AccessToken != ""
}

// Fingerprint changes whenever anything the proxy uses changes, without
// revealing the credential; sync uses it to report updated accounts.
func (a Account) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%d\x00%s\x00%s", a.Tier, a.Kind, a.AccessToken, a.RefreshToken,
		a.ExpiresAt.UnixMilli(), a.APIKey, strings.Join(a.BaseURLs, ","))
	if a.MaxConcurrency != 0 {
		fmt.Fprintf(h, "\x00%d", a.MaxConcurrency)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ErrBadFile marks an account file that cannot be used.
var ErrBadFile = errors.New("bad account file")

type fileShape struct {
	ClaudeAiOauth *struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
		ExpiresAt    *int64 `json:"expiresAt"`
	} `json:"claudeAiOauth"`
	APIKey   string   `json:"apiKey"`
	BaseURL  string   `json:"baseURL"`
	BaseURLs []string `json:"baseURLs"`
	Disabled bool     `json:"disabled"`
	// MaxConcurrency: see Account.MaxConcurrency.
	MaxConcurrency *int `json:"max_concurrency"`
}

// Parse reads an account file's bytes (either shape of docs/contract.md). Name, Tier
// and Path are left for the caller.
func Parse(b []byte) (Account, error) {
	var f fileShape
	if err := json.Unmarshal(b, &f); err != nil {
		return Account{}, fmt.Errorf("%w: invalid JSON: %v", ErrBadFile, err)
	}
	var a Account
	switch {
	case f.ClaudeAiOauth != nil && f.APIKey != "":
		return Account{}, fmt.Errorf("%w: has both claudeAiOauth and apiKey", ErrBadFile)
	case f.ClaudeAiOauth != nil:
		o := f.ClaudeAiOauth
		if o.AccessToken == "" && o.RefreshToken == "" {
			return Account{}, fmt.Errorf("%w: claudeAiOauth needs accessToken or refreshToken", ErrBadFile)
		}
		a.Kind, a.AccessToken, a.RefreshToken = OAuth, o.AccessToken, o.RefreshToken
		if o.ExpiresAt != nil {
			if *o.ExpiresAt < 0 {
				return Account{}, fmt.Errorf("%w: claudeAiOauth.expiresAt is negative", ErrBadFile)
			}
			a.ExpiresAt = time.UnixMilli(*o.ExpiresAt)
		}
	case f.APIKey != "":
		a.Kind, a.APIKey = APIKey, f.APIKey
	default:
		return Account{}, fmt.Errorf("%w: neither claudeAiOauth nor apiKey", ErrBadFile)
	}
	if f.BaseURL != "" {
		a.BaseURLs = append(a.BaseURLs, f.BaseURL)
	}
	a.BaseURLs = append(a.BaseURLs, f.BaseURLs...)
	a.Disabled = f.Disabled
	if f.MaxConcurrency != nil {
		if *f.MaxConcurrency < 0 {
			return Account{}, fmt.Errorf("%w: max_concurrency must not be negative", ErrBadFile)
		}
		a.MaxConcurrency = *f.MaxConcurrency
	}
	for _, u := range a.BaseURLs {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return Account{}, fmt.Errorf("%w: baseURL %q is not an http(s) URL", ErrBadFile, u)
		}
	}
	return a, nil
}

// LoadError is a file that was skipped, with why.
type LoadError struct {
	Path string
	Err  error
}

func (e LoadError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e LoadError) Unwrap() error { return e.Err }

// LoadDir reads every ACCOUNT_DIR/<tier>/**/<name>.json whose tier is known.
// A broken file is reported in the second result and skipped; it never stops
// the others from loading. A name found twice is kept once (first path in
// lexical order) and the other reported, since names identify accounts.
//
// Every file or folder whose name starts with "." is skipped: editors'
// backups (high/.backup/o1.json must not shadow high/o1.json) and the
// "..data" and "..2025_…" folders Kubernetes uses to swap a Secret or
// ConfigMap atomically. Symlinks are followed (Kubernetes' visible names
// are links through "..data"), folders only when they resolve inside dir,
// and each real folder is walked once.
func LoadDir(dir string, knownTier func(string) bool) ([]Account, []LoadError) {
	l := loader{knownTier: knownTier, seen: map[string]string{}}
	report := func(e LoadError) { l.bad = append(l.bad, e) }
	if err := walkFolder(dir, l.load, report); err != nil {
		return nil, []LoadError{{dir, err}}
	}
	sort.Slice(l.out, func(i, j int) bool { return l.out[i].Name < l.out[j].Name })
	return l.out, l.bad
}

type loader struct {
	knownTier func(string) bool
	seen      map[string]string // account name → path
	out       []Account
	bad       []LoadError
}

func (l *loader) load(path, tier, name string) bool {
	if !l.knownTier(tier) {
		l.bad = append(l.bad, LoadError{path, fmt.Errorf("%w: unknown tier folder %q", ErrBadFile, tier)})
		return true
	}
	if !ValidName(name) {
		l.bad = append(l.bad, LoadError{path, fmt.Errorf("%w: account name %q: must be %s", ErrBadFile, name, NameRule)})
		return true
	}
	if prev, dup := l.seen[name]; dup {
		l.bad = append(l.bad, LoadError{path, fmt.Errorf("%w: account name %q already used by %s", ErrBadFile, name, prev)})
		return true
	}
	b, err := os.ReadFile(path)
	if err != nil {
		l.bad = append(l.bad, LoadError{path, err})
		return true
	}
	a, err := Parse(b)
	if err != nil {
		l.bad = append(l.bad, LoadError{path, err})
		return true
	}
	a.Name, a.Tier, a.Path = name, tier, path
	l.seen[name] = path
	l.out = append(l.out, a)
	return true
}

// WriteBack stores refreshed OAuth credentials in the account file under
// root (ACCOUNT_DIR): fields the proxy does not know are kept, the JSON is
// minified as Claude Code writes it, and the file is replaced atomically
// (temp file, fsync, rename) with mode 0600, so a crash never leaves a
// half-written credential.
//
// A symlinked file is written through to its target, so the operator's
// link stays and the target never keeps an already-rotated refresh token;
// a target outside root is never written (ErrNotWritable), nor is a file
// on a read-only file system. The file is read and written under the
// folder lock the admin verbs take, so a disable running meanwhile can
// neither lose the new tokens nor put the rotated (dead) ones back.
func WriteBack(root, path, access, refresh string, expiresAt time.Time) error {
	err := updateFile(root, path, func(b []byte) ([]byte, error) {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("write back %s: %w", path, err)
		}
		var oauth map[string]json.RawMessage
		if raw, ok := doc["claudeAiOauth"]; ok {
			if err := json.Unmarshal(raw, &oauth); err != nil {
				return nil, fmt.Errorf("write back %s: claudeAiOauth: %w", path, err)
			}
		}
		if oauth == nil {
			oauth = map[string]json.RawMessage{}
		}
		set := func(k string, v any) {
			enc, _ := json.Marshal(v)
			oauth[k] = enc
		}
		set("accessToken", access)
		set("refreshToken", refresh)
		set("expiresAt", expiresAt.UnixMilli())
		enc, err := marshalCompact(oauth)
		if err != nil {
			return nil, err
		}
		doc["claudeAiOauth"] = enc
		return marshalCompact(doc)
	})
	if err != nil {
		return fmt.Errorf("write back: %w", err)
	}
	return nil
}

func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
