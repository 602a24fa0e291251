package keys

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// change1 commits one change and returns the key's ledger record after it.
// A change that names a tier the ledger does not hold the key in (Redis
// and the ledger disagree during a move) is tried once more on whichever
// tier holds it; a move always names its source.
func (s *Store) change1(ctx context.Context, c Change) (Record, error) {
	if c.At.IsZero() {
		c.At = s.now()
	}
	out, err := s.ledger.Commit(ctx, c)
	if errors.Is(err, ErrNotFound) && c.Tier != "" && c.Op != OpMove {
		c.Tier = ""
		out, err = s.ledger.Commit(ctx, c)
	}
	if err != nil {
		return Record{}, err
	}
	return out[0], nil
}

// PostBinding records a new binding in the ledger without waiting: the
// ledger's writer commits it with the next batch, well within a second,
// so a flushed store brings the key back to the same account. The request
// path calls it; the live binding is already in the pool (Redis), and sync
// writes back any binding the ledger missed.
func (s *Store) PostBinding(tier, hash, account string) error {
	return s.ledger.Post(Change{Op: OpBind, Tier: tier, Hash: hash, Account: account, At: s.now()})
}

// MaxIssue bounds one bulk issue.
const MaxIssue = 10000

// IssueMany creates n keys of tier at once: their Redis records in
// pipelined batches and their ledger records in one commit (one append
// and one fsync), so issuing 1,000 keys costs about what issuing one does
// several times over, at any ledger size. Like Issue, a failed ledger
// write withdraws every key before anyone has it. The raw keys are
// returned here and nowhere else.
func (s *Store) IssueMany(ctx context.Context, tier string, validity time.Duration, note string, n int) ([]string, []Record, error) {
	return s.IssueManyWith(ctx, IssueSpec{Tier: tier, Validity: validity, Note: note}, n)
}

// IssueManyWith is IssueMany with every option of IssueSpec but Account.
func (s *Store) IssueManyWith(ctx context.Context, sp IssueSpec, n int) ([]string, []Record, error) {
	tier, validity, note := sp.Tier, sp.Validity, sp.Note
	if n < 1 || n > MaxIssue {
		return nil, nil, fmt.Errorf("keys: issue: count must be 1 to %d", MaxIssue)
	}
	if err := checkTier(tier); err != nil {
		return nil, nil, err
	}
	if validity < 0 {
		return nil, nil, fmt.Errorf("keys: negative validity %v", validity)
	}
	if err := sp.Budgets.Check(); err != nil {
		return nil, nil, err
	}
	if len(note) > MaxNoteLen || !utf8.ValidString(note) {
		return nil, nil, fmt.Errorf("keys: note must be valid UTF-8 of at most %d bytes", MaxNoteLen)
	}
	now := s.now()
	raw := make([]string, 0, n)
	recs := make([]Record, 0, n)
	// Ids are claimed with SETNX as in Issue; a clash draws another key in
	// the next round.
	for round := 0; len(recs) < n && round < 3; round++ {
		want := n - len(recs)
		keys := make([]string, want)
		cand := make([]Record, want)
		for i := range keys {
			keys[i] = Generate()
			h := Hash(keys[i])
			cand[i] = Record{ID: ID(h), Hash: h, Prefix: Prefix(keys[i]), Tier: tier,
				Status: StatusActive, Note: note, Created: now}
			sp.setValidity(&cand[i], now)
		}
		claimed, err := s.claimIDs(ctx, cand)
		if err != nil {
			s.undoMany(ctx, recs)
			return nil, nil, fmt.Errorf("keys: issue: %w", err)
		}
		for i, ok := range claimed {
			if ok {
				raw, recs = append(raw, keys[i]), append(recs, cand[i])
			}
		}
	}
	if len(recs) < n {
		s.undoMany(ctx, recs)
		return nil, nil, errors.New("keys: issue: could not draw keys with free ids")
	}
	cs := make([]Change, len(recs))
	for i, r := range recs {
		cs[i] = Change{Op: OpIssue, Record: r, At: now}
	}
	if _, err := s.ledger.Commit(ctx, cs...); err != nil {
		s.undoMany(ctx, recs)
		return nil, nil, fmt.Errorf("keys: issue: %w", err)
	}
	return raw, recs, nil
}

// claimIDs claims each record's id index and writes its record, in
// pipelined batches; it reports which ids were free (a taken one wrote
// nothing).
func (s *Store) claimIDs(ctx context.Context, recs []Record) ([]bool, error) {
	ok := make([]bool, len(recs))
	// 200 commands a pipeline: replies are read under the client's 400 ms
	// read timeout, which a loaded store must meet.
	const batch = 100
	for start := 0; start < len(recs); start += batch {
		chunk := recs[start:min(start+batch, len(recs))]
		cmds := make([]*redis.BoolCmd, len(chunk))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range chunk {
				cmds[i] = p.SetNX(ctx, idKey(r.ID), r.Hash, 0)
			}
			return nil
		}); err != nil {
			s.undoMany(ctx, recs[:start+len(chunk)])
			return nil, err
		}
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range chunk {
				if ok[start+i] = cmds[i].Val(); ok[start+i] {
					p.HSet(ctx, recordKey(r.Hash), r.fields()...)
				}
			}
			return nil
		}); err != nil {
			s.undoMany(ctx, recs[:start+len(chunk)])
			return nil, err
		}
	}
	return ok, nil
}

// undoMany removes half-issued keys (see undoIssue). An id index is
// removed only while it names the key, so a clash's owner keeps its own.
func (s *Store) undoMany(ctx context.Context, recs []Record) {
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range recs {
			p.Del(ctx, recordKey(r.Hash))
			forgetIndexScript.Eval(ctx, p, []string{idKey(r.ID)}, r.Hash)
		}
		return nil
	})
}

// Page lists the ledger's keys that match f, a page at a time (see
// Ledger.Page); records carry the ledger's account.
func (s *Store) Page(ctx context.Context, f Filter, cursor string, limit int) ([]Record, string, error) {
	return s.ledger.Page(ctx, f, s.clk.Now(), cursor, limit)
}

// Each calls fn for every ledger record that matches f (Ledger.Each).
func (s *Store) Each(ctx context.Context, f Filter, fn func(Record)) error {
	return s.ledger.Each(ctx, f, s.clk.Now(), fn)
}

// Lapsed lists the ledger's revoked and expired keys and the next expiry
// ahead (Ledger.Lapsed), at the store's clock.
func (s *Store) Lapsed(ctx context.Context) ([]string, time.Time, error) {
	return s.ledger.Lapsed(ctx, s.clk.Now())
}

// RestoreMany is Restore for many records, in pipelined batches (sync
// after a flush); it returns how many records Redis lacked.
func (s *Store) RestoreMany(ctx context.Context, recs []Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	if err := restoreScript.Load(ctx, s.rdb).Err(); err != nil {
		return 0, fmt.Errorf("keys: restore: %w", err)
	}
	n := 0
	// 100 records (200 commands) a pipeline: its replies are read under
	// the client's 400 ms read timeout, which a loaded store must meet.
	const batch = 100
	for start := 0; start < len(recs); start += batch {
		chunk := recs[start:min(start+batch, len(recs))]
		cmds := make([]*redis.Cmd, len(chunk))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range chunk {
				if err := r.validate(); err != nil {
					return err
				}
				args := append([]any{r.Status, toMillis(r.RevokedAt)}, r.fields()...)
				cmds[i] = restoreScript.EvalSha(ctx, p, []string{recordKey(r.Hash)}, args...)
				// The id index lives in another slot; NX keeps an
				// existing entry.
				p.SetNX(ctx, idKey(r.ID), r.Hash, 0)
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("keys: restore: %w", err)
		}
		for _, c := range cmds {
			if v, _ := c.Int(); v == 1 {
				n++
			}
		}
	}
	return n, nil
}

// ReconcileMany is Reconcile for many ledger records: their Redis records
// read in pipelined batches and the ledger's fixes written in one commit.
// It returns the records as the ledger now has them and how many changed.
func (s *Store) ReconcileMany(ctx context.Context, recs []Record) ([]Record, int, error) {
	hashes := make([]string, len(recs))
	for i, r := range recs {
		hashes[i] = r.Hash
	}
	cur, err := s.Records(ctx, hashes)
	if err != nil {
		return nil, 0, err
	}
	var cs []Change
	var at []int
	for i, r := range recs {
		c, ok := cur[r.Hash]
		if !ok || c.Tier != r.Tier {
			continue // Restore brings it back; or a move settles it
		}
		if c.Status == StatusRevoked && r.Status != StatusRevoked {
			cs = append(cs, Change{Op: OpRevoke, Tier: r.Tier, Hash: r.Hash, RevokedAt: c.RevokedAt})
			at = append(at, i)
		} else if r.Status != StatusRevoked && !r.Expires.Equal(c.Expires) {
			cs = append(cs, Change{Op: OpExtend, Tier: r.Tier, Hash: r.Hash, Expires: c.Expires})
			at = append(at, i)
		}
	}
	out := recs
	if len(cs) > 0 {
		fixed, err := s.ledger.Commit(ctx, cs...)
		if err != nil {
			return nil, 0, fmt.Errorf("keys: reconcile: %w", err)
		}
		out = append([]Record(nil), recs...)
		for j, i := range at {
			out[i] = fixed[j]
		}
	}
	return out, len(cs), nil
}
