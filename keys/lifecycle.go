package keys

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Lifecycle changes after issue: extend, note, move to another tier. Each
// is written to Redis (what every replica reads) and then to the ledger (so
// it survives a flush). A ledger write that fails undoes the Redis change,
// so the two never disagree for longer than the call.

// ErrRevokedKey refuses a change to a revoked key: revocation is final.
var ErrRevokedKey = errors.New("the key is revoked")

// ErrConflict: the record changed under the call (another operator's move).
var ErrConflict = errors.New("the key changed meanwhile; try again")

// changeScript sets fields of a record that exists, is not revoked (unless
// ARGV[2] is '1') and, when ARGV[1] is not empty, still has tier ARGV[1].
// It answers the record as it was before, so the caller can undo.
// ARGV[3..]: field/value pairs.
var changeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if ARGV[2] ~= '1' and redis.call('HGET', KEYS[1], 'status') == 'revoked' then return 'revoked' end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'tier') ~= ARGV[1] then return 'conflict' end
local before = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return before
`)

// change applies fields to the Redis record of hash (guarded as
// changeScript says) and returns the record before and after. A revoked
// key may only change its note (the operator may want to say why).
func (s *Store) change(ctx context.Context, hash, wantTier string, fields ...any) (before, after Record, err error) {
	anyStatus := "0"
	if len(fields) == 2 && fields[0] == fNote {
		anyStatus = "1"
	}
	v, err := changeScript.Run(ctx, s.rdb, []string{recordKey(hash)}, append([]any{wantTier, anyStatus}, fields...)...).Result()
	if err != nil {
		return Record{}, Record{}, fmt.Errorf("keys: change: %w", err)
	}
	switch v {
	case "missing":
		return Record{}, Record{}, ErrNotFound
	case "revoked":
		return Record{}, Record{}, ErrRevokedKey
	case "conflict":
		return Record{}, Record{}, ErrConflict
	}
	before, err = ParseRecord(hash, flatToMap(v))
	if err != nil {
		return Record{}, Record{}, err
	}
	m := flatToMap(v)
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i].(string)] = fmt.Sprint(fields[i+1])
	}
	after, err = ParseRecord(hash, m)
	return before, after, err
}

// undo puts fields of before back in Redis after a failed ledger write. It
// runs even when ctx is done (the usual reason for the failure).
func (s *Store) undo(ctx context.Context, before Record, fields ...string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	all := before.fields()
	var back []any
	for i := 0; i+1 < len(all); i += 2 {
		for _, f := range fields {
			if all[i] == f {
				back = append(back, all[i], all[i+1])
			}
		}
	}
	if len(back) > 0 {
		_ = s.rdb.HSet(ctx, recordKey(before.Hash), back...).Err()
	}
}

// SetExpiry sets when the key expires (zero: never). An expired key becomes
// usable again; a revoked one stays revoked.
func (s *Store) SetExpiry(ctx context.Context, ref string, until time.Time) (Record, error) {
	h, err := s.resolve(ctx, ref)
	if err != nil {
		return Record{}, err
	}
	until = truncMillis(until)
	// An explicit expiry also ends a wait for the first use.
	before, after, err := s.change(ctx, h, "", fExpires, toMillis(until), fFirstUse, 0)
	if err != nil {
		return Record{}, err
	}
	lr, err := s.change1(ctx, Change{Op: OpExtend, Tier: before.Tier, Hash: h, Expires: until})
	if err != nil {
		s.undo(ctx, before, fExpires, fFirstUse)
		return before, fmt.Errorf("keys: set expiry: ledger: %w", err)
	}
	after.Account = lr.Account
	return after, nil
}

// SetNote replaces the operator's note.
func (s *Store) SetNote(ctx context.Context, ref, note string) (Record, error) {
	if len(note) > MaxNoteLen || !utf8.ValidString(note) {
		return Record{}, fmt.Errorf("keys: note must be valid UTF-8 of at most %d bytes", MaxNoteLen)
	}
	h, err := s.resolve(ctx, ref)
	if err != nil {
		return Record{}, err
	}
	before, after, err := s.change(ctx, h, "", fNote, note)
	if err != nil {
		return Record{}, err
	}
	lr, err := s.change1(ctx, Change{Op: OpNote, Tier: before.Tier, Hash: h, Note: note})
	if err != nil {
		s.undo(ctx, before, fNote)
		return before, fmt.Errorf("keys: set note: ledger: %w", err)
	}
	after.Account = lr.Account
	return after, nil
}

// SetTier moves the key's record to another tier: in Redis (guarded on the
// tier it had, so two concurrent moves cannot both win) and in the ledger,
// from one tier file to the other. The caller rebinds the key in the pool;
// a failed rebind is undone with SetTier back. The key keeps its hash, so
// its raw value, usage history and quota windows stay.
func (s *Store) SetTier(ctx context.Context, ref, from, to string) (Record, error) {
	if err := checkTier(to); err != nil {
		return Record{}, err
	}
	h, err := s.resolve(ctx, ref)
	if err != nil {
		return Record{}, err
	}
	before, after, err := s.change(ctx, h, from, fTier, to)
	if err != nil {
		return Record{}, err
	}
	lr, err := s.change1(ctx, Change{Op: OpMove, Tier: from, Hash: h, To: to})
	if err != nil {
		s.undo(ctx, before, fTier)
		return before, fmt.Errorf("keys: move: ledger: %w", err)
	}
	after.Account = lr.Account
	return after, nil
}
