// Package keys owns client keys: their format, how they are hashed and
// stored in Redis, and the ledger PRODUCT_DIR/<tier>.json that survives a
// flushed store. A raw key exists only in the answer to Issue; everything
// else (Redis, the ledger, logs, ids) is derived from its SHA-256.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Sentinel errors; callers test them with errors.Is and map them to the
// customer-facing 401 messages of docs/contract.md.
var (
	// ErrFormat: the string is not "sk-cli-v1-" + 32 base62 characters.
	ErrFormat = errors.New("invalid API key format")
	// ErrNotFound: no record for this key, id or hash.
	ErrNotFound = errors.New("unknown API key")
	// ErrRevoked: the key was revoked by the operator.
	ErrRevoked = errors.New("API key revoked")
	// ErrExpired: the key's validity has run out.
	ErrExpired = errors.New("API key expired")
)

const (
	// KeyPrefix starts every client key.
	KeyPrefix = "sk-cli-v1-"
	// RandomLen is the number of base62 characters after the prefix
	// (32 × log2(62) ≈ 190 bits of entropy).
	RandomLen = 32
	// KeyLen is the total length of a well-formed key.
	KeyLen = len(KeyPrefix) + RandomLen

	alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// displayLen is how many random characters Prefix shows: enough for an
	// operator to tell keys apart, far too few to help guess one.
	displayLen = 4
	idHexLen   = 12
)

// Generate returns a fresh key from crypto/rand.
func Generate() string {
	k, err := generate(rand.Reader)
	if err != nil {
		// crypto/rand.Reader does not fail on supported platforms (and the
		// runtime aborts if it would); a failure here is unrecoverable.
		panic(fmt.Sprintf("keys: reading crypto/rand: %v", err))
	}
	return k
}

// generate draws RandomLen characters from r by rejection sampling: bytes
// at or above 248 (= 4×62) are dropped so that b%62 is exactly uniform.
func generate(r io.Reader) (string, error) {
	var b strings.Builder
	b.Grow(KeyLen)
	b.WriteString(KeyPrefix)
	buf := make([]byte, 48) // 32 needed; ~3% are rejected, so one read usually suffices
	for n := 0; n < RandomLen; {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("keys: random source: %w", err)
		}
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			b.WriteByte(alphabet[c%62])
			if n++; n == RandomLen {
				break
			}
		}
	}
	return b.String(), nil
}

func isBase62(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}

// CheckFormat reports, without touching any store, whether key is well
// formed. The error wraps ErrFormat and never repeats the key itself, so it
// is safe to log.
func CheckFormat(key string) error {
	if len(key) != KeyLen {
		return fmt.Errorf("%w: want %d characters, got %d", ErrFormat, KeyLen, len(key))
	}
	if !strings.HasPrefix(key, KeyPrefix) {
		return fmt.Errorf("%w: want prefix %s", ErrFormat, KeyPrefix)
	}
	for i := len(KeyPrefix); i < KeyLen; i++ {
		if !isBase62(key[i]) {
			return fmt.Errorf("%w: character %d is not a letter or digit", ErrFormat, i+1)
		}
	}
	return nil
}

// Hash is the hex SHA-256 of the key: the only form in which a key is
// stored. Lookups go by hash, so no stored secret is ever compared.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// ID is the short, non-secret name of a key ("k_" + 12 hex of its hash),
// for logs, the CLI and the dashboard.
func ID(hash string) string {
	if len(hash) < idHexLen {
		return "k_" + hash
	}
	return "k_" + hash[:idHexLen]
}

// Prefix is the display form of a key, showing only its first 4 random
// characters: "sk-cli-v1-Ab3x…".
func Prefix(key string) string {
	n := min(len(key), len(KeyPrefix)+displayLen)
	return key[:n] + "…"
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isHash reports whether s has the shape of Hash's output.
func isHash(s string) bool { return len(s) == 2*sha256.Size && isLowerHex(s) }

// isID reports whether s has the shape of ID's output.
func isID(s string) bool {
	return len(s) == 2+idHexLen && strings.HasPrefix(s, "k_") && isLowerHex(s[2:])
}

// FromHeaders finds the client's key in a request. Both x-api-key and
// "Authorization: Bearer" are accepted (docs/contract.md). The rule when both are
// present:
//
//   - a value that starts with "sk-cli-v1-" wins over one that does not, so
//     a stray Authorization header set by some other tool (or a stale
//     ANTHROPIC_API_KEY next to our key in ANTHROPIC_AUTH_TOKEN) does not
//     hide the customer's key;
//   - if both look like our keys, Bearer wins, as Claude Code gives
//     ANTHROPIC_AUTH_TOKEN precedence over ANTHROPIC_API_KEY (docs/upstream.md);
//   - if neither does, the Bearer value (else x-api-key) is returned, so
//     the caller answers "Invalid API key format" rather than "no key".
//
// ok is false only when neither header carries a value.
func FromHeaders(h http.Header) (key string, ok bool) {
	api := strings.TrimSpace(h.Get("X-Api-Key"))
	var bearer string
	if a := strings.TrimSpace(h.Get("Authorization")); len(a) > len("Bearer ") && strings.EqualFold(a[:len("Bearer ")], "Bearer ") {
		bearer = strings.TrimSpace(a[len("Bearer "):])
	}
	switch {
	case strings.HasPrefix(bearer, KeyPrefix):
		return bearer, true
	case strings.HasPrefix(api, KeyPrefix):
		return api, true
	case bearer != "":
		return bearer, true
	case api != "":
		return api, true
	}
	return "", false
}
