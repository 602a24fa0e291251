package keys

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/clock"
)

// MaxNoteLen bounds an operator's note, in bytes.
const MaxNoteLen = 512

// Store issues, finds and revokes keys. Redis (cr:key:<hash>, and the index
// cr:keyid:<id> → hash) is what every replica reads on each request; the
// Ledger is the durable copy. Both are written on every change.
type Store struct {
	rdb    redis.UniversalClient
	ledger *Ledger
	clk    clock.Clock
}

// NewStore returns a Store over rdb and ledger; clk decides creation,
// expiry and revocation times.
func NewStore(rdb redis.UniversalClient, ledger *Ledger, clk clock.Clock) *Store {
	return &Store{rdb: rdb, ledger: ledger, clk: clk}
}

// Ledger is the durable ledger this store writes to (for sync).
func (s *Store) Ledger() *Ledger { return s.ledger }

func (s *Store) now() time.Time { return truncMillis(s.clk.Now()) }

// Issue creates a key of tier, valid for validity (0: forever), and records
// it in Redis and the ledger. account is the binding to record, "" when the
// pool binds the key later. The raw key is returned here and nowhere else.
func (s *Store) Issue(ctx context.Context, tier string, validity time.Duration, note, account string) (string, Record, error) {
	return s.IssueWith(ctx, IssueSpec{Tier: tier, Validity: validity, Note: note, Account: account})
}

// IssueSpec is what a new key is issued with.
type IssueSpec struct {
	Tier     string
	Validity time.Duration // 0: forever
	// FromFirstUse starts the validity at the key's first successful
	// request (Activate) instead of now.
	FromFirstUse bool
	Note         string
	Account      string
	// Budgets are the key's own budgets (zero: the tier's).
	Budgets Budgets
}

// setValidity gives a new record its expiry, or the validity that starts
// at its first use, and its own budgets.
func (sp IssueSpec) setValidity(r *Record, now time.Time) {
	r.Budgets = sp.Budgets
	switch {
	case sp.Validity > 0 && sp.FromFirstUse:
		r.FirstUse = time.Duration(sp.Validity.Milliseconds()) * time.Millisecond
	case sp.Validity > 0:
		r.Expires = truncMillis(now.Add(sp.Validity))
	}
}

// IssueWith is Issue with every option.
func (s *Store) IssueWith(ctx context.Context, sp IssueSpec) (string, Record, error) {
	tier, validity, note, account := sp.Tier, sp.Validity, sp.Note, sp.Account
	if err := checkTier(tier); err != nil {
		return "", Record{}, err
	}
	if validity < 0 {
		return "", Record{}, fmt.Errorf("keys: negative validity %v", validity)
	}
	if err := sp.Budgets.Check(); err != nil {
		return "", Record{}, err
	}
	if len(note) > MaxNoteLen || !utf8.ValidString(note) {
		return "", Record{}, fmt.Errorf("keys: note must be valid UTF-8 of at most %d bytes", MaxNoteLen)
	}
	now := s.now()
	// Two keys sharing a 48-bit id is unlikely but not impossible over
	// millions of keys; the id index is claimed with SETNX and a clash
	// simply draws another key.
	for range 3 {
		key := Generate()
		h := Hash(key)
		rec := Record{
			ID: ID(h), Hash: h, Prefix: Prefix(key), Tier: tier,
			Status: StatusActive, Note: note, Account: account, Created: now,
		}
		sp.setValidity(&rec, now)
		ok, err := s.rdb.SetNX(ctx, idKey(rec.ID), h, 0).Result()
		if err != nil {
			return "", Record{}, fmt.Errorf("keys: issue: %w", err)
		}
		if !ok {
			continue
		}
		if err := s.rdb.HSet(ctx, recordKey(h), rec.fields()...).Err(); err != nil {
			s.undoIssue(ctx, rec)
			return "", Record{}, fmt.Errorf("keys: issue: %w", err)
		}
		// A key the ledger does not hold would vanish at the next flush,
		// so a failed ledger write withdraws the key before anyone has it.
		if _, err := s.ledger.Commit(ctx, Change{Op: OpIssue, Record: rec, At: now}); err != nil {
			s.undoIssue(ctx, rec)
			return "", Record{}, fmt.Errorf("keys: issue: %w", err)
		}
		return key, rec, nil
	}
	return "", Record{}, errors.New("keys: issue: could not draw a key with a free id")
}

// undoIssue removes a half-issued key. It runs even when ctx is done (the
// usual reason for the failure) but not forever.
func (s *Store) undoIssue(ctx context.Context, rec Record) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// Separate DELs: the two keys live in different cluster slots.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, recordKey(rec.Hash))
		p.Del(ctx, idKey(rec.ID))
		return nil
	})
}

// QueueGet adds the record read to a pipeline the caller runs with its own
// commands (the proxy's first round trip); feed the result to ParseRecord.
func (s *Store) QueueGet(ctx context.Context, pipe redis.Pipeliner, hash string) *redis.MapStringStringCmd {
	return pipe.HGetAll(ctx, recordKey(hash))
}

// Authenticate checks a raw key: format, then record, then Active. The
// record is returned along with ErrRevoked or ErrExpired, so callers can
// log its id.
func (s *Store) Authenticate(ctx context.Context, key string) (Record, error) {
	if err := CheckFormat(key); err != nil {
		return Record{}, err
	}
	h := Hash(key)
	m, err := s.rdb.HGetAll(ctx, recordKey(h)).Result()
	if err != nil {
		return Record{}, fmt.Errorf("keys: authenticate: %w", err)
	}
	rec, err := ParseRecord(h, m)
	if err != nil {
		return Record{}, err
	}
	return rec, rec.Active(s.clk.Now())
}

// resolve turns a reference into a hash: a full key, a hash, or an id
// (through the Redis index). The reference is never echoed in errors: it
// may be a secret.
func (s *Store) resolve(ctx context.Context, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	switch {
	case strings.HasPrefix(ref, KeyPrefix):
		if err := CheckFormat(ref); err != nil {
			return "", err
		}
		return Hash(ref), nil
	case isHash(ref):
		return ref, nil
	case isID(ref):
		h, err := s.rdb.Get(ctx, idKey(ref)).Result()
		if errors.Is(err, redis.Nil) {
			return "", ErrNotFound
		}
		if err != nil {
			return "", fmt.Errorf("keys: lookup id: %w", err)
		}
		return h, nil
	}
	return "", fmt.Errorf("%w: want a key, a key id (k_…) or a key hash", ErrNotFound)
}

// Get finds a record in Redis by full key, id "k_…" or hash. It does not
// check Active: revoked and expired records are returned without error.
func (s *Store) Get(ctx context.Context, ref string) (Record, error) {
	h, err := s.resolve(ctx, ref)
	if err != nil {
		return Record{}, err
	}
	m, err := s.rdb.HGetAll(ctx, recordKey(h)).Result()
	if err != nil {
		return Record{}, fmt.Errorf("keys: get: %w", err)
	}
	return ParseRecord(h, m)
}

// Filter narrows List. Empty fields match everything.
type Filter struct {
	Tier string
	// Status is the effective state: active, revoked or expired.
	Status string
	// Query is a case-insensitive substring of the id, prefix, note or
	// the ledger's account.
	Query string
	// Account is the account the ledger has the key bound to (Page only:
	// records read from Redis carry no account).
	Account string
}

func (f Filter) match(r Record, now time.Time) bool {
	if f.Tier != "" && r.Tier != f.Tier {
		return false
	}
	if f.Status != "" && r.State(now) != f.Status {
		return false
	}
	if f.Account != "" && r.Account != f.Account {
		return false
	}
	if q := strings.ToLower(f.Query); q != "" {
		return strings.Contains(strings.ToLower(r.ID), q) ||
			strings.Contains(strings.ToLower(r.Prefix), q) ||
			strings.Contains(strings.ToLower(r.Note), q) ||
			strings.Contains(strings.ToLower(r.Account), q)
	}
	return true
}

// List returns the records in Redis that match f, oldest first. It walks
// the keyspace with SCAN (every master of a cluster), never KEYS, so a big
// keyspace does not block the store.
func (s *Store) List(ctx context.Context, f Filter) ([]Record, error) {
	names, err := scanKeys(ctx, s.rdb, recordKey("*"))
	if err != nil {
		return nil, fmt.Errorf("keys: list: %w", err)
	}
	now := s.clk.Now()
	var out []Record
	const batch = 256
	for start := 0; start < len(names); start += batch {
		chunk := names[start:min(start+batch, len(names))]
		cmds := make([]*redis.MapStringStringCmd, len(chunk))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, n := range chunk {
				cmds[i] = p.HGetAll(ctx, n)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("keys: list: %w", err)
		}
		for i, n := range chunk {
			h := strings.TrimPrefix(n, recordKey(""))
			if !isHash(h) {
				continue // not one of ours
			}
			rec, err := ParseRecord(h, cmds[i].Val())
			if errors.Is(err, ErrNotFound) {
				continue // deleted between SCAN and read
			}
			if err != nil {
				return nil, err
			}
			if f.match(rec, now) {
				out = append(out, rec)
			}
		}
	}
	sortRecords(out)
	return out, nil
}

// scanKeys collects the names matching pattern on every master.
func scanKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	var (
		mu    sync.Mutex
		names []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var local []string
		for it.Next(ctx) {
			local = append(local, it.Val())
		}
		if err := it.Err(); err != nil {
			return err
		}
		mu.Lock()
		names = append(names, local...)
		mu.Unlock()
		return nil
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return scan(ctx, m) })
		return names, err
	}
	return names, scan(ctx, rdb)
}

// revokeScript marks a record revoked, keeping the first revocation time,
// and answers the record; nil when there is no record (it must not create
// a partial one).
var revokeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('HGET', KEYS[1], 'status') ~= 'revoked' then
  redis.call('HSET', KEYS[1], 'status', 'revoked', 'revoked', ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
`)

// Revoke stops a key at once: every replica reads the Redis record on each
// request. The ledger is updated next. Revoking a revoked key is not an
// error and keeps the first revocation time. A key known only to the ledger
// (Redis flushed, not yet synced) is revoked there and restored as revoked.
func (s *Store) Revoke(ctx context.Context, ref string) (Record, error) {
	h, err := s.resolve(ctx, ref)
	if errors.Is(err, ErrNotFound) && isID(strings.TrimSpace(ref)) {
		id := strings.TrimSpace(ref)
		var lr Record
		lr, err = s.ledger.find(ctx, func(r Record) bool { return r.ID == id })
		h = lr.Hash
	}
	if err != nil {
		return Record{}, err
	}
	now := s.now()
	v, err := revokeScript.Run(ctx, s.rdb, []string{recordKey(h)}, toMillis(now)).Result()
	if errors.Is(err, redis.Nil) {
		return s.revokeLedgerOnly(ctx, h, now)
	}
	if err != nil {
		return Record{}, fmt.Errorf("keys: revoke: %w", err)
	}
	rec, err := ParseRecord(h, flatToMap(v))
	if err != nil {
		return Record{}, err
	}
	lr, err := s.change1(ctx, Change{Op: OpRevoke, Tier: rec.Tier, Hash: h, RevokedAt: rec.RevokedAt})
	if errors.Is(err, ErrNotFound) {
		// Redis knew the key but the ledger did not (a lost folder): put it
		// back so that the revocation survives a flush.
		_, err := s.ledger.Commit(ctx, Change{Op: OpIssue, Record: rec, At: now})
		return rec, err
	}
	if err != nil {
		return rec, fmt.Errorf("keys: revoke: revoked in Redis but not in the ledger: %w", err)
	}
	rec.Account = lr.Account
	return rec, nil
}

func (s *Store) revokeLedgerOnly(ctx context.Context, h string, now time.Time) (Record, error) {
	lr, err := s.change1(ctx, Change{Op: OpRevoke, Hash: h, RevokedAt: now, At: now})
	if err != nil {
		return Record{}, err
	}
	if _, err := s.Restore(ctx, lr); err != nil {
		return lr, err
	}
	return lr, nil
}

func flatToMap(v any) map[string]string {
	arr, _ := v.([]any)
	m := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		m[k] = val
	}
	return m
}

// SetAccount records in the ledger which account a key is bound to, so a
// binding survives a flush. The pool keeps the live binding in Redis.
func (s *Store) SetAccount(ctx context.Context, hash, account string) error {
	if !isHash(hash) {
		return fmt.Errorf("%w: not a key hash", ErrNotFound)
	}
	// The tier narrows the ledger search to one file; without Redis (or
	// its record) every file is searched.
	tier, err := s.rdb.HGet(ctx, recordKey(hash), fTier).Result()
	if err != nil || checkTier(tier) != nil {
		tier = ""
	}
	if _, err := s.change1(ctx, Change{Op: OpBind, Tier: tier, Hash: hash, Account: account}); err != nil {
		return fmt.Errorf("keys: set account: %w", err)
	}
	return nil
}

// restoreScript writes a ledger record into Redis when Redis has none. A
// revocation in the ledger also wins over an active Redis record, since
// revocation is final. ARGV: status, revoked ms, then field/value pairs.
var restoreScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
  return 1
end
if ARGV[1] == 'revoked' and st ~= 'revoked' then
  redis.call('HSET', KEYS[1], 'status', 'revoked', 'revoked', ARGV[2])
  return 1
end
return 0
`)

// Restore writes a ledger record into Redis if it is missing there (sync
// after a flush) and reports whether Redis changed. A record already in
// Redis is left alone, except that a revocation in r is applied.
func (s *Store) Restore(ctx context.Context, r Record) (bool, error) {
	if err := r.validate(); err != nil {
		return false, err
	}
	args := append([]any{r.Status, toMillis(r.RevokedAt)}, r.fields()...)
	n, err := restoreScript.Run(ctx, s.rdb, []string{recordKey(r.Hash)}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("keys: restore %s: %w", r.ID, err)
	}
	// The id index lives in another slot, so it is written on its own; NX
	// keeps an existing index entry.
	if err := s.rdb.SetNX(ctx, idKey(r.ID), r.Hash, 0).Err(); err != nil {
		return n == 1, fmt.Errorf("keys: restore %s: index: %w", r.ID, err)
	}
	return n == 1, nil
}

// Reconcile copies into the ledger what Redis knows better about r, the
// ledger's record: a revocation Redis took while the ledger write failed
// (revocation is final on either side), and an expiry Redis enforces that
// the ledger missed (a change whose ledger write or undo failed). The
// other direction, ledger to Redis, is Restore. It returns the ledger's
// record as it now is and whether the ledger changed.
func (s *Store) Reconcile(ctx context.Context, r Record) (Record, bool, error) {
	m, err := s.rdb.HGetAll(ctx, recordKey(r.Hash)).Result()
	if err != nil {
		return r, false, fmt.Errorf("keys: reconcile %s: %w", r.ID, err)
	}
	cur, err := ParseRecord(r.Hash, m)
	if errors.Is(err, ErrNotFound) {
		return r, false, nil // Restore brings it back
	}
	if err != nil {
		return r, false, err
	}
	if cur.Tier != r.Tier {
		return r, false, nil // a move in progress; its own write settles it
	}
	var cs []Change
	if cur.Status == StatusRevoked && r.Status != StatusRevoked {
		cs = append(cs, Change{Op: OpRevoke, Tier: r.Tier, Hash: r.Hash, RevokedAt: cur.RevokedAt})
	} else if r.Status != StatusRevoked && !r.Expires.Equal(cur.Expires) {
		cs = append(cs, Change{Op: OpExtend, Tier: r.Tier, Hash: r.Hash, Expires: cur.Expires})
	}
	if len(cs) == 0 {
		return r, false, nil
	}
	outs, err := s.ledger.Commit(ctx, cs...)
	if err != nil {
		return r, false, fmt.Errorf("keys: reconcile %s: %w", r.ID, err)
	}
	out := outs[len(outs)-1]
	return out, true, nil
}

// Records reads the Redis records of the given key hashes in pipelined
// batches; hashes without a record are left out of the map.
func (s *Store) Records(ctx context.Context, hashes []string) (map[string]Record, error) {
	out := make(map[string]Record, len(hashes))
	const batch = 256
	for start := 0; start < len(hashes); start += batch {
		chunk := hashes[start:min(start+batch, len(hashes))]
		cmds := make([]*redis.MapStringStringCmd, len(chunk))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, h := range chunk {
				cmds[i] = p.HGetAll(ctx, recordKey(h))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("keys: records: %w", err)
		}
		for i, h := range chunk {
			rec, err := ParseRecord(h, cmds[i].Val())
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out[h] = rec
		}
	}
	return out, nil
}

// Forget deletes a key's Redis record and its id index (retention: the
// ledger archived it). The index is removed only while it still names
// this key.
func (s *Store) Forget(ctx context.Context, r Record) error {
	if err := s.rdb.Del(ctx, recordKey(r.Hash)).Err(); err != nil {
		return fmt.Errorf("keys: forget %s: %w", r.ID, err)
	}
	if err := forgetIndexScript.Run(ctx, s.rdb, []string{idKey(r.ID)}, r.Hash).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("keys: forget %s: %w", r.ID, err)
	}
	return nil
}

var forgetIndexScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)
