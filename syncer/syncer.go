// Package syncer makes Redis follow the truth on disk: the account folder
// (ACCOUNT_DIR/<tier>/<name>.json) and the key ledger (PRODUCT_DIR). It runs
// at start, every SYNC_INTERVAL and on demand, one replica at a time.
//
// A sync never takes the pool apart to rebuild it: each account is replaced
// atomically, only accounts whose file is gone are removed, and the slot
// counters are recomputed in one script. Requests keep flowing throughout.
package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/tiers"
)

// AccountStore holds account credentials in Redis.
type AccountStore interface {
	Put(ctx context.Context, a accounts.Account) error
	All(ctx context.Context) ([]accounts.Account, error)
	Delete(ctx context.Context, name string) error
}

// Pool is the binding state.
type Pool interface {
	SetTier(ctx context.Context, account, tier string) error
	Remove(ctx context.Context, account string) (int, error)
	Recount(ctx context.Context) (int, error)
	RestoreBinding(ctx context.Context, keyHash, tier string, slots int, account string) (bool, error)
	Release(ctx context.Context, keyHash string) (bool, error)
}

// KeyLedger is the durable record of issued keys.
type KeyLedger interface {
	All(ctx context.Context) ([]keys.Record, error)
}

// KeyStore restores ledger records into Redis.
type KeyStore interface {
	Restore(ctx context.Context, r keys.Record) (bool, error)
}

// Refresher re-plans OAuth refreshes after accounts changed.
type Refresher interface {
	Replan(ctx context.Context) error
}

// Config tunes a Syncer.
type Config struct {
	AccountDir string
	Tiers      *tiers.Table
	Clock      clock.Clock
	Log        logrus.FieldLogger
	// LockTTL bounds how long a crashed replica can hold the sync lock.
	LockTTL time.Duration
	// OnRun, if set, is told of every sync this replica runs.
	OnRun func(ok bool)
}

const (
	lockName = "cr:lock:sync"
	lastKey  = "cr:sync:last"
)

// Syncer runs full syncs.
type Syncer struct {
	rdb    redis.UniversalClient
	cfg    Config
	as     AccountStore
	pool   Pool
	ledger KeyLedger
	ks     KeyStore
	rf     Refresher
	rs     *redsync.Redsync
	host   string
}

// New returns a Syncer; rf may be nil.
func New(rdb redis.UniversalClient, cfg Config, as AccountStore, pool Pool, ledger KeyLedger, ks KeyStore, rf Refresher) *Syncer {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.LockTTL == 0 {
		cfg.LockTTL = 2 * time.Minute
	}
	host, _ := os.Hostname()
	return &Syncer{rdb: rdb, cfg: cfg, as: as, pool: pool, ledger: ledger, ks: ks, rf: rf,
		rs: redsync.New(goredis.NewPool(rdb)), host: fmt.Sprintf("%s/%d", host, os.Getpid())}
}

// Report is what a sync did.
type Report struct {
	StartedAt        time.Time     `json:"started_at"`
	Duration         time.Duration `json:"-"`
	DurationMS       int64         `json:"duration_ms"`
	Added            []string      `json:"accounts_added"`
	Updated          []string      `json:"accounts_updated"`
	Removed          []string      `json:"accounts_removed"`
	Skipped          []string      `json:"files_skipped"`
	KeysRestored     int           `json:"keys_restored"`
	BindingsRestored int           `json:"bindings_restored"`
	BindingsMoved    int           `json:"bindings_moved"`
	SlotsReleased    int           `json:"slots_released"`
	Replica          string        `json:"replica"`
	// Joined is true when this replica found a sync running elsewhere,
	// waited for it and reports its result instead of running another.
	Joined bool   `json:"joined,omitempty"`
	Error  string `json:"error,omitempty"`
}

// String is the one-line summary the CLI prints and the log keeps.
func (r Report) String() string {
	s := fmt.Sprintf("sync: accounts +%d ~%d -%d, %d keys restored, %d bindings restored, %d moved, %d slots released, %d files skipped, %dms",
		len(r.Added), len(r.Updated), len(r.Removed), r.KeysRestored, r.BindingsRestored, r.BindingsMoved,
		r.SlotsReleased, len(r.Skipped), r.DurationMS)
	if r.Joined {
		s += " (run by " + r.Replica + ", joined)"
	}
	if r.Error != "" {
		s += "; error: " + r.Error
	}
	return s
}

// ErrNoAccountDir refuses a sync whose folder is missing: reading a missing
// mount as "every account was deleted" would empty the pool.
var ErrNoAccountDir = errors.New("account folder missing")

// Sync runs a full sync, or, if another replica is running one, waits for
// it and returns its report (Joined).
func (s *Syncer) Sync(ctx context.Context) (Report, error) {
	m := s.rs.NewMutex(lockName, redsync.WithExpiry(s.cfg.LockTTL), redsync.WithTries(1))
	if err := m.TryLockContext(ctx); err != nil {
		var taken *redsync.ErrTaken
		if !errors.As(err, &taken) && !errors.Is(err, redsync.ErrFailed) {
			return Report{}, fmt.Errorf("sync lock: %w", err)
		}
		return s.join(ctx)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = m.UnlockContext(uctx)
	}()
	rep, err := s.run(ctx)
	if err != nil {
		rep.Error = err.Error()
	}
	if b, merr := json.Marshal(rep); merr == nil {
		_ = s.rdb.Set(ctx, lastKey, b, 0).Err()
	}
	if s.cfg.OnRun != nil {
		s.cfg.OnRun(err == nil)
	}
	log := s.cfg.Log.WithField("replica", s.host)
	if err != nil {
		log.WithError(err).Error(rep.String())
	} else {
		log.Info(rep.String())
	}
	return rep, err
}

// join waits for the running sync to finish and returns its report.
func (s *Syncer) join(ctx context.Context) (Report, error) {
	for {
		n, err := s.rdb.Exists(ctx, lockName).Result()
		if err != nil {
			return Report{}, fmt.Errorf("sync lock: %w", err)
		}
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return Report{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	last, err := s.Last(ctx)
	if err != nil || last == nil {
		return Report{}, fmt.Errorf("a sync ran elsewhere but left no report: %v", err)
	}
	last.Joined = true
	return *last, nil
}

// Last returns the latest sync's report, nil if none ran yet.
func (s *Syncer) Last(ctx context.Context) (*Report, error) {
	b, err := s.rdb.Get(ctx, lastKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Run syncs every interval until ctx ends (the sync at start is the
// caller's, so that it can happen before serving).
func (s *Syncer) Run(ctx context.Context, every time.Duration) {
	for {
		fire := make(chan struct{})
		t := s.cfg.Clock.AfterFunc(every, func() { close(fire) })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-fire:
		}
		if _, err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.WithError(err).Warn("periodic sync failed; the next one retries")
		}
	}
}

func (s *Syncer) run(ctx context.Context) (Report, error) {
	start := s.cfg.Clock.Now()
	rep := Report{StartedAt: start.UTC(), Replica: s.host, Added: []string{}, Updated: []string{}, Removed: []string{}, Skipped: []string{}}
	defer func() {
		rep.Duration = s.cfg.Clock.Now().Sub(start)
		rep.DurationMS = rep.Duration.Milliseconds()
	}()
	if st, err := os.Stat(s.cfg.AccountDir); err != nil || !st.IsDir() {
		return rep, fmt.Errorf("%w: %s", ErrNoAccountDir, s.cfg.AccountDir)
	}
	files, bad := accounts.LoadDir(s.cfg.AccountDir, func(t string) bool { _, ok := s.cfg.Tiers.Get(t); return ok })
	for _, b := range bad {
		rep.Skipped = append(rep.Skipped, b.Error())
		s.cfg.Log.WithField("path", b.Path).Warnf("skipping account file: %v", b.Err)
	}
	existing, err := s.as.All(ctx)
	if err != nil {
		return rep, err
	}
	have := make(map[string]accounts.Account, len(existing))
	for _, a := range existing {
		have[a.Name] = a
	}
	seen := make(map[string]bool, len(files))
	for _, a := range files {
		seen[a.Name] = true
		old, known := have[a.Name]
		if err := s.as.Put(ctx, a); err != nil {
			return rep, err
		}
		if err := s.pool.SetTier(ctx, a.Name, a.Tier); err != nil {
			return rep, err
		}
		switch {
		case !known:
			rep.Added = append(rep.Added, a.Name)
		case changed(old, a):
			rep.Updated = append(rep.Updated, a.Name)
		}
	}
	type forgetter interface {
		Forget(ctx context.Context, name string) error
	}
	for _, a := range existing {
		if seen[a.Name] {
			continue
		}
		if err := s.as.Delete(ctx, a.Name); err != nil {
			return rep, err
		}
		moved, err := s.pool.Remove(ctx, a.Name)
		if err != nil {
			return rep, err
		}
		if f, ok := s.rf.(forgetter); ok {
			_ = f.Forget(ctx, a.Name)
		}
		rep.Removed = append(rep.Removed, a.Name)
		rep.BindingsMoved += moved
	}
	if err := s.restoreKeys(ctx, &rep); err != nil {
		return rep, err
	}
	if _, err := s.pool.Recount(ctx); err != nil {
		return rep, err
	}
	if s.rf != nil {
		if err := s.rf.Replan(ctx); err != nil {
			s.cfg.Log.WithError(err).Warn("refresh re-plan after sync failed")
		}
	}
	return rep, nil
}

// changed compares what the proxy uses. When Redis holds newer OAuth
// tokens than the file (a refresh landed; Put keeps them), the tokens are
// not a change.
func changed(old, file accounts.Account) bool {
	if old.Kind == accounts.OAuth && file.Kind == accounts.OAuth && old.ExpiresAt.After(file.ExpiresAt) {
		file.AccessToken, file.RefreshToken, file.ExpiresAt = old.AccessToken, old.RefreshToken, old.ExpiresAt
	}
	return old.Fingerprint() != file.Fingerprint() || old.Path != file.Path
}

// restoreKeys brings back every ledger key Redis lacks, with its binding,
// and frees the slots of keys that are revoked or expired.
func (s *Syncer) restoreKeys(ctx context.Context, rep *Report) error {
	recs, err := s.ledger.All(ctx)
	if err != nil {
		return fmt.Errorf("read ledger: %w", err)
	}
	now := s.cfg.Clock.Now()
	for _, r := range recs {
		restored, err := s.ks.Restore(ctx, r)
		if err != nil {
			return fmt.Errorf("restore key %s: %w", r.ID, err)
		}
		if restored {
			rep.KeysRestored++
		}
		if r.Active(now) != nil {
			released, err := s.pool.Release(ctx, r.Hash)
			if err != nil {
				return err
			}
			if released {
				rep.SlotsReleased++
			}
			continue
		}
		tier, ok := s.cfg.Tiers.Get(r.Tier)
		if !ok || r.Account == "" || strings.TrimSpace(r.Account) == "" {
			continue
		}
		ok, err = s.pool.RestoreBinding(ctx, r.Hash, tier.Name, tier.Slots, r.Account)
		if err != nil {
			return err
		}
		if ok {
			rep.BindingsRestored++
		}
	}
	return nil
}
