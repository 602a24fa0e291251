package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/store"
)

// ErrNotFound is an account the store does not know.
var ErrNotFound = errors.New("account not found")

// Store keeps each account's credentials in Redis, so that every replica
// uses a refreshed token from its next request. One HASH per account:
// cr:acct:<name>.
type Store struct {
	rdb redis.UniversalClient
}

// NewStore returns a credential store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

func acctKey(name string) string { return "cr:acct:" + name }

func toHash(a Account) map[string]any {
	urls, _ := json.Marshal(a.BaseURLs)
	var exp int64
	if !a.ExpiresAt.IsZero() {
		exp = a.ExpiresAt.UnixMilli()
	}
	return map[string]any{
		"name": a.Name, "tier": a.Tier, "kind": string(a.Kind),
		"access": a.AccessToken, "refresh": a.RefreshToken, "expires": exp,
		"api_key": a.APIKey, "base_urls": string(urls), "path": a.Path,
		"max_concurrency": a.MaxConcurrency,
	}
}

// FromHash decodes an account HASH; an empty map is ErrNotFound.
func FromHash(name string, m map[string]string) (Account, error) {
	if len(m) == 0 {
		return Account{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	a := Account{
		Name: name, Tier: m["tier"], Kind: Kind(m["kind"]),
		AccessToken: m["access"], RefreshToken: m["refresh"],
		APIKey: m["api_key"], Path: m["path"],
	}
	a.MaxConcurrency, _ = strconv.Atoi(m["max_concurrency"])
	if ms, _ := strconv.ParseInt(m["expires"], 10, 64); ms > 0 {
		a.ExpiresAt = time.UnixMilli(ms)
	}
	if u := m["base_urls"]; u != "" && u != "null" {
		if err := json.Unmarshal([]byte(u), &a.BaseURLs); err != nil {
			return Account{}, fmt.Errorf("account %s: base_urls: %w", name, err)
		}
	}
	return a, nil
}

// Put writes the whole account, replacing what Redis had (sync: the file is
// the truth). Credentials a refresh wrote since the file was read are not
// lost: Put keeps Redis's tokens when they were refreshed from the file's
// refresh token (see putScript).
func (s *Store) Put(ctx context.Context, a Account) error {
	h := toHash(a)
	_, err := putScript.Run(ctx, s.rdb, []string{acctKey(a.Name)},
		h["name"], h["tier"], h["kind"], h["access"], h["refresh"], h["expires"],
		h["api_key"], h["base_urls"], h["path"], h["max_concurrency"]).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("store account %s: %w", a.Name, err)
	}
	return nil
}

// putScript replaces the account but never moves OAuth credentials
// backwards: when Redis holds tokens that a refresh obtained from exactly
// the file's refresh token (the file is one refresh behind, e.g. its
// write-back failed or the sync read it mid-refresh), Redis's tokens stay.
// Any other credentials in the file win: the operator pasted a new login.
var putScript = redis.NewScript(`
local keep = ARGV[3] == 'oauth' and redis.call('HGET', KEYS[1], 'kind') == 'oauth'
  and ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'refreshed_from') == redis.sha1hex(ARGV[5])
  and redis.call('HGET', KEYS[1], 'refresh') ~= ARGV[5]
local access, refresh, expires, from = ARGV[4], ARGV[5], ARGV[6], ''
if keep then
  access = redis.call('HGET', KEYS[1], 'access')
  refresh = redis.call('HGET', KEYS[1], 'refresh')
  expires = redis.call('HGET', KEYS[1], 'expires')
  from = redis.call('HGET', KEYS[1], 'refreshed_from')
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'tier', ARGV[2], 'kind', ARGV[3],
  'access', access, 'refresh', refresh, 'expires', expires,
  'api_key', ARGV[7], 'base_urls', ARGV[8], 'path', ARGV[9], 'refreshed_from', from,
  'max_concurrency', ARGV[10])
if keep then return 1 end
return 0
`)

// Get reads one account.
func (s *Store) Get(ctx context.Context, name string) (Account, error) {
	m, err := s.rdb.HGetAll(ctx, acctKey(name)).Result()
	if err != nil {
		return Account{}, fmt.Errorf("read account %s: %w", name, err)
	}
	return FromHash(name, m)
}

// QueueGet adds the account read to a pipeline (the proxy's hot path).
func (s *Store) QueueGet(ctx context.Context, pipe redis.Pipeliner, name string) *redis.MapStringStringCmd {
	return pipe.HGetAll(ctx, acctKey(name))
}

// Delete forgets the account's credentials.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.rdb.Del(ctx, acctKey(name)).Err()
}

// All lists every account in Redis.
func (s *Store) All(ctx context.Context) ([]Account, error) {
	keys, err := store.ScanKeys(ctx, s.rdb, "cr:acct:*")
	if err != nil {
		return nil, fmt.Errorf("scan accounts: %w", err)
	}
	sort.Strings(keys)
	out := make([]Account, 0, len(keys))
	for _, k := range keys {
		a, err := s.Get(ctx, strings.TrimPrefix(k, "cr:acct:"))
		if errors.Is(err, ErrNotFound) {
			continue // removed between the scan and the read
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// SwapCredentials is a compare-and-set on the refresh token that was used:
// it writes the new tokens only if Redis still holds usedRefresh, so a
// replica with stale credentials can never overwrite a newer token.
func (s *Store) SwapCredentials(ctx context.Context, name, usedRefresh, access, refresh string, expiresAt time.Time) (bool, error) {
	n, err := swapScript.Run(ctx, s.rdb, []string{acctKey(name)}, usedRefresh, access, refresh, expiresAt.UnixMilli()).Int()
	if err != nil {
		return false, fmt.Errorf("swap credentials %s: %w", name, err)
	}
	return n == 1, nil
}

// swapScript also records a digest of the refresh token it replaced, so
// that a sync can tell a file that is merely one refresh behind (keep
// Redis's tokens) from new credentials the operator pasted (take them).
var swapScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'refresh') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'access', ARGV[2], 'refresh', ARGV[3], 'expires', ARGV[4],
  'refreshed_from', redis.sha1hex(ARGV[1]))
return 1
`)
