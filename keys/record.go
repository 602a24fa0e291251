package keys

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Stored statuses. Expiry is not a stored status: it is computed from
// Expires at each check, so no job has to flip records when time passes.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
	// StatusExpired is only a State and a Filter value, never stored.
	StatusExpired = "expired"
)

// Record is what is known about one key. It never holds the raw key.
type Record struct {
	ID     string // "k_" + 12 hex of Hash
	Hash   string // hex SHA-256 of the key
	Prefix string // "sk-cli-v1-Ab3x…"
	Tier   string
	Status string // StatusActive or StatusRevoked
	Note   string
	// Account is the binding recorded in the ledger. The live binding is the
	// pool's (Redis); records read from Redis leave Account empty.
	Account   string
	Created   time.Time
	Expires   time.Time // zero: never expires
	RevokedAt time.Time // zero unless revoked
	// FirstUse is a validity that starts at the key's first successful
	// request; until then Expires is zero and the key is "not activated".
	// Activation sets Expires and clears it.
	FirstUse time.Duration
	// Budgets are the key's own budgets; a zero window keeps the tier's.
	Budgets Budgets
}

// NotActivated reports whether the key waits for its first use to start
// its validity.
func (r Record) NotActivated() bool { return r.FirstUse > 0 && r.Expires.IsZero() }

// Active reports whether the key may be used at now: nil, ErrRevoked or
// ErrExpired. A key expires at the instant Expires, not a millisecond later.
func (r Record) Active(now time.Time) error {
	if r.Status != StatusActive {
		return ErrRevoked
	}
	if !r.Expires.IsZero() && !now.Before(r.Expires) {
		return ErrExpired
	}
	return nil
}

// State is the effective status at now: active, revoked or expired.
func (r Record) State(now time.Time) string {
	err := r.Active(now)
	switch {
	case err == nil:
		return StatusActive
	case errors.Is(err, ErrExpired):
		return StatusExpired
	default:
		return StatusRevoked
	}
}

// tierName limits tier names to what is safe as a file name in PRODUCT_DIR.
var tierName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

func checkTier(tier string) error {
	if !tierName.MatchString(tier) {
		return fmt.Errorf("keys: invalid tier name %q (want lower-case letters, digits, '-' or '_')", tier)
	}
	return nil
}

// validate checks a record from outside (the ledger, Restore) before it is
// trusted as a file name or a Redis key.
func (r Record) validate() error {
	if !isHash(r.Hash) {
		return fmt.Errorf("keys: record hash is not 64 lower-case hex characters")
	}
	if r.ID != ID(r.Hash) {
		return fmt.Errorf("keys: record %s: id does not match its hash", r.ID)
	}
	if err := checkTier(r.Tier); err != nil {
		return fmt.Errorf("keys: record %s: %w", r.ID, err)
	}
	if r.Status != StatusActive && r.Status != StatusRevoked {
		return fmt.Errorf("keys: record %s: unknown status %q", r.ID, r.Status)
	}
	if r.Created.IsZero() {
		return fmt.Errorf("keys: record %s: no creation time", r.ID)
	}
	return nil
}

// Redis hash fields of cr:key:<hash>.
const (
	fID      = "id"
	fTier    = "tier"
	fCreated = "created" // unix ms
	fExpires = "expires" // unix ms, 0 = never
	fStatus  = "status"
	fNote    = "note"
	fPrefix  = "prefix"
	fRevoked = "revoked" // unix ms, 0 = not revoked
	// fFirstUse is the validity (ms) that starts at first use, 0 = none.
	fFirstUse = "first_use"
)

func recordKey(hash string) string { return "cr:key:" + hash }
func idKey(id string) string       { return "cr:keyid:" + id }

func toMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// truncMillis brings t to the precision Redis keeps, so that a record read
// back equals the one written.
func truncMillis(t time.Time) time.Time { return fromMillis(toMillis(t)) }

// fields is the record as HSET arguments (field, value, …).
func (r Record) fields() []any {
	return []any{
		fID, r.ID,
		fTier, r.Tier,
		fCreated, toMillis(r.Created),
		fExpires, toMillis(r.Expires),
		fStatus, r.Status,
		fNote, r.Note,
		fPrefix, r.Prefix,
		fRevoked, toMillis(r.RevokedAt),
		fFirstUse, r.FirstUse.Milliseconds(),
		fBudgetDay, usdText(r.Budgets.DayUSD),
		fBudgetWeek, usdText(r.Budgets.WeekUSD),
	}
}

// ParseRecord turns the HGETALL of cr:key:<hash> into a Record. An empty map
// (no such key) is ErrNotFound; a record with missing or malformed fields is
// an error that names the key id, not ErrNotFound, so corruption is seen.
func ParseRecord(hash string, m map[string]string) (Record, error) {
	if len(m) == 0 {
		return Record{}, ErrNotFound
	}
	r := Record{
		Hash:   hash,
		ID:     m[fID],
		Tier:   m[fTier],
		Status: m[fStatus],
		Note:   m[fNote],
		Prefix: m[fPrefix],
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{fCreated, &r.Created}, {fExpires, &r.Expires}, {fRevoked, &r.RevokedAt}} {
		v, ok := m[f.name]
		if !ok && f.name == fCreated {
			return Record{}, fmt.Errorf("keys: record %s: missing %q", ID(hash), f.name)
		}
		if !ok || v == "" {
			continue
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Record{}, fmt.Errorf("keys: record %s: field %q: %w", ID(hash), f.name, err)
		}
		*f.dst = fromMillis(ms)
	}
	if v := m[fFirstUse]; v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return Record{}, fmt.Errorf("keys: record %s: field %q: not a duration in ms", ID(hash), fFirstUse)
		}
		r.FirstUse = time.Duration(ms) * time.Millisecond
	}
	b, err := parseBudgets(ID(hash), m)
	if err != nil {
		return Record{}, err
	}
	r.Budgets = b
	if err := r.validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}
