package accounts

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// keyProbe keeps the last recovery probe per account (see package probe).
const keyProbe = "cr:{pool}:probe" // HASH account → JSON ProbeResult

// ProbeResult is the last recovery probe of a blacklisted account.
type ProbeResult struct {
	At     time.Time `json:"at"`
	Result string    `json:"result"` // "recovered" or what the upstream answered
}

// Blacklisted returns every blacklisted account with its entry.
func (p *Pool) Blacklisted(ctx context.Context) (map[string]BlacklistEntry, error) {
	raw, err := p.rdb.HGetAll(ctx, keyBL).Result()
	if err != nil {
		return nil, fmt.Errorf("read blacklist: %w", err)
	}
	out := make(map[string]BlacklistEntry, len(raw))
	for a, v := range raw {
		var e BlacklistEntry
		_ = json.Unmarshal([]byte(v), &e)
		out[a] = e
	}
	return out, nil
}

// ClaimProbe takes the one probe of the account for the interval that
// contains now, across every replica (SET NX with the interval as TTL).
func (p *Pool) ClaimProbe(ctx context.Context, account string, interval time.Duration) (bool, error) {
	slot := p.clock.Now().UnixNano() / int64(interval)
	key := fmt.Sprintf("cr:probe:lock:%s:%d", account, slot)
	ok, err := p.rdb.SetNX(ctx, key, "1", interval).Result()
	if err != nil {
		return false, fmt.Errorf("claim probe of %s: %w", account, err)
	}
	return ok, nil
}

// RecordProbe stores the probe's time and result for `pool`.
func (p *Pool) RecordProbe(ctx context.Context, account string, r ProbeResult) error {
	b, _ := json.Marshal(r)
	if err := p.rdb.HSet(ctx, keyProbe, account, b).Err(); err != nil {
		return fmt.Errorf("record probe of %s: %w", account, err)
	}
	return nil
}

// Credential-rejection reasons the probe may test again: the upstream
// refused the credential (401, 403 revoked). Operator blacklistings,
// disabled organizations and a rejected refresh token (invalid_grant, which
// only an operator can fix) are never probed.
func Probeable(reason string) bool {
	r := strings.ToLower(reason)
	switch {
	case r == "disabled", strings.HasPrefix(r, "disabled"), strings.Contains(r, "invalid_grant"), strings.Contains(r, "refresh"):
		return false
	case strings.HasPrefix(r, "upstream 401"), strings.HasPrefix(r, "upstream 403") && strings.Contains(r, "revoked"):
		return true
	}
	return false
}
