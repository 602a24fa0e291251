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
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// AccountStore holds account credentials in Redis (accounts.Store).
type AccountStore interface {
	Put(ctx context.Context, a accounts.Account) error
	Get(ctx context.Context, name string) (accounts.Account, error)
	All(ctx context.Context) ([]accounts.Account, error)
	Delete(ctx context.Context, name string) error
}

// Pool is the binding state (accounts.Pool).
type Pool interface {
	SetTier(ctx context.Context, account, tier string) error
	Remove(ctx context.Context, account string) (int, error)
	Recount(ctx context.Context) (int, error)
	RestoreBinding(ctx context.Context, keyHash, tier string, slots int, account string) (bool, error)
	Release(ctx context.Context, keyHash string) (bool, error)
	Retire(ctx context.Context, keyHash string) (bool, error)
	Bindings(ctx context.Context) (map[string]string, error)
	// SetDisabled keeps the blacklist entry of a disabled account in step
	// with its file's "disabled" flag.
	SetDisabled(ctx context.Context, account string, disabled bool) (bool, error)
}

// KeyLedger is the durable record of issued keys (keys.Ledger).
type KeyLedger interface {
	All(ctx context.Context) ([]keys.Record, error)
}

// Archiver moves records past retention out of the live ledger
// (keys.Ledger); a ledger without it keeps every record.
type Archiver interface {
	Archive(ctx context.Context, recs []keys.Record, end func(keys.Record) time.Time) error
}

// Forgetters drop an archived key's state from Redis.
type keyForgetter interface {
	Forget(ctx context.Context, r keys.Record) error
}
type poolForgetter interface {
	ForgetKey(ctx context.Context, keyHash string) error
}

// KeyStore restores ledger records into Redis (keys.Store).
type KeyStore interface {
	Restore(ctx context.Context, r keys.Record) (bool, error)
	Reconcile(ctx context.Context, r keys.Record) (keys.Record, bool, error)
	SetAccount(ctx context.Context, hash, account string) error
}

// TierTable is the product table the sync reads tiers from (a
// *tiers.Table, or a *tiers.Live that a reload replaces).
type TierTable interface {
	Get(name string) (*tiers.Tier, bool)
}

// Refresher re-plans OAuth refreshes after accounts changed; its Replan
// re-reads the OAuth accounts from Redis, so removed accounts lose their
// refresh timers and new ones get one.
type Refresher interface {
	Replan(ctx context.Context) error
}

// Config tunes a Syncer.
type Config struct {
	AccountDir string
	Tiers      TierTable   // nil: tiers.Builtin()
	Clock      clock.Clock // nil: the wall clock
	Log        logrus.FieldLogger
	// LockTTL bounds how long a crashed replica can block syncs. A running
	// sync extends the lock, so a slow sync never loses it midway.
	LockTTL time.Duration
	// OnRun, if set, is told of every sync this replica runs (metrics).
	OnRun func(ok bool)
	// Retention is how long a revoked or expired key is kept after it
	// ended (KEY_RETENTION); past it sync archives it. 0: keep forever.
	Retention time.Duration
	// Usage, if set, loses an archived key's usage totals.
	Usage interface {
		Forget(ctx context.Context, keyHash string) error
	}
	// ReloadTiers, if set, re-reads the product table (TIERS_FILE) at the
	// start of every Sync, on this replica, whether it runs the sync or
	// joins one. Its error keeps the old table and is the report's
	// tiers_error (tiers.Live.Reload).
	ReloadTiers func() (changed bool, err error)
}

// Redis keys owned by this package.
const (
	lockKey   = "cr:sync:lock"
	lastKey   = "cr:sync:last"
	runPrefix = "cr:sync:run:" // + run id: a finished sync's report, for replicas that joined it
	// genKey counts the changes made to the account folder through the
	// proxy (SyncAfter); a sync reads it before it reads the folder.
	genKey = "cr:sync:gen"
	// runTTL keeps a run's report long enough for every waiting replica to
	// read it; cr:sync:last keeps the latest for good.
	runTTL = time.Hour
	// joinPoll is how often a waiting replica looks whether the running
	// sync is done. It is Redis time (the lock's expiry), not clock time.
	joinPoll = 25 * time.Millisecond
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
	if cfg.Tiers == nil {
		cfg.Tiers = tiers.Builtin()
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = 2 * time.Minute
	}
	host, _ := os.Hostname()
	return &Syncer{rdb: rdb, cfg: cfg, as: as, pool: pool, ledger: ledger, ks: ks, rf: rf,
		rs: redsync.New(goredis.NewPool(rdb)), host: fmt.Sprintf("%s/%d", host, os.Getpid())}
}

// Report is what a sync did. It holds account names and counts, never a
// credential or a key.
type Report struct {
	// ID names the run; replicas that joined it return the same ID.
	ID               string        `json:"id"`
	StartedAt        time.Time     `json:"started_at"`
	Duration         time.Duration `json:"-"` // encoded as duration_seconds
	Added            []string      `json:"accounts_added"`
	Updated          []string      `json:"accounts_updated"`
	Removed          []string      `json:"accounts_removed"`
	Skipped          []string      `json:"files_skipped"` // "path: reason"
	KeysRestored     int           `json:"keys_restored"`
	BindingsRestored int           `json:"bindings_restored"`
	BindingsMoved    int           `json:"bindings_moved"`
	SlotsReleased    int           `json:"slots_released"`
	// LedgerBindings counts live bindings written back to a ledger that
	// had missed them.
	LedgerBindings int `json:"ledger_bindings_written"`
	// LedgerRepaired counts ledger records that took a revocation or an
	// expiry Redis had and the ledger had missed.
	LedgerRepaired int `json:"ledger_records_repaired"`
	// KeysArchived counts keys past KEY_RETENTION moved to the archive.
	KeysArchived int `json:"keys_archived"`
	// Generation is the folder generation (see SyncAfter) the run read
	// before it read the folder: it saw every change marked up to it.
	Generation int64  `json:"generation"`
	Replica    string `json:"replica"`
	// Joined is true when this replica found a sync running elsewhere,
	// waited for it and reports its result instead of running another.
	Joined bool   `json:"joined,omitempty"`
	Error  string `json:"error,omitempty"`
	// TiersError is why this replica's TIERS_FILE did not load at this
	// sync; the previous table stays in service.
	TiersError string `json:"tiers_error,omitempty"`
	// TiersReloaded is true when this sync put a changed tiers file in
	// service on this replica.
	TiersReloaded bool `json:"tiers_reloaded,omitempty"`
}

type reportJSON Report

// MarshalJSON writes Duration in seconds (duration_seconds), as every
// duration the service emits.
func (r Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		reportJSON
		DurationSeconds float64 `json:"duration_seconds"`
	}{reportJSON(r), r.Duration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *Report) UnmarshalJSON(b []byte) error {
	var v struct {
		reportJSON
		DurationSeconds float64 `json:"duration_seconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Report(v.reportJSON)
	r.Duration = time.Duration(v.DurationSeconds * float64(time.Second))
	return nil
}

// String is the one-line summary the CLI prints and the log keeps.
func (r Report) String() string {
	s := fmt.Sprintf("sync: accounts +%d ~%d -%d, %d keys restored, %d bindings restored, %d moved, %d slots released, %d files skipped, %dms",
		len(r.Added), len(r.Updated), len(r.Removed), r.KeysRestored, r.BindingsRestored, r.BindingsMoved,
		r.SlotsReleased, len(r.Skipped), r.Duration.Milliseconds())
	if r.Joined {
		s += " (run by " + r.Replica + ", joined)"
	}
	if r.Error != "" {
		s += "; error: " + r.Error
	}
	if r.TiersReloaded {
		s += "; tiers file reloaded"
	}
	if r.TiersError != "" {
		s += "; tiers file NOT reloaded: " + r.TiersError
	}
	return s
}

// ErrNoAccountDir refuses a sync whose folder is missing: reading a missing
// mount as "every account was deleted" would empty the pool.
var ErrNoAccountDir = errors.New("account folder missing")

// Sync runs a full sync, or, if another replica is running one, waits for
// it and returns that sync's report with Joined set: two replicas asked at
// the same moment run one sync and both return its report.
func (s *Syncer) Sync(ctx context.Context) (Report, error) {
	changed, terr := s.reloadTiers()
	rep, err := s.syncOnce(ctx)
	rep.TiersReloaded = changed
	if terr != nil {
		rep.TiersError = terr.Error()
	}
	return rep, err
}

// reloadTiers re-reads the product table before the sync reads tiers, so
// an account folder of a tier new in the file is taken in the same run.
func (s *Syncer) reloadTiers() (bool, error) {
	if s.cfg.ReloadTiers == nil {
		return false, nil
	}
	changed, err := s.cfg.ReloadTiers()
	switch {
	case err != nil:
		s.cfg.Log.WithError(err).Error("TIERS_FILE not reloaded")
	case changed:
		s.cfg.Log.Info("TIERS_FILE reloaded: new limits apply to the next request; keys keep their bindings")
	}
	return changed, err
}

// syncOnce is Sync without the tiers reload.
func (s *Syncer) syncOnce(ctx context.Context) (Report, error) {
	for {
		id, err := newRunID()
		if err != nil {
			return Report{}, err
		}
		m := s.rs.NewMutex(lockKey, redsync.WithExpiry(s.cfg.LockTTL), redsync.WithTries(1),
			redsync.WithGenValueFunc(func() (string, error) { return id, nil }))
		err = m.TryLockContext(ctx)
		if err == nil {
			return s.locked(ctx, m, id)
		}
		var taken *redsync.ErrTaken
		if !errors.As(err, &taken) {
			return Report{}, fmt.Errorf("sync lock: %w", err)
		}
		rep, ok, err := s.join(ctx)
		if err != nil {
			return rep, err
		}
		if ok {
			// This replica's refresh timers follow the accounts the other
			// replica's sync just wrote.
			if s.rf != nil {
				if err := s.rf.Replan(ctx); err != nil {
					s.cfg.Log.WithError(err).Warn("refresh re-plan after a joined sync failed")
				}
			}
			if rep.Error != "" {
				return rep, fmt.Errorf("the sync run by %s failed: %s", rep.Replica, rep.Error)
			}
			return rep, nil
		}
		// The sync we waited for left no report (its replica died, or the
		// lock was gone before we saw whose it was): try to run one.
	}
}

// SyncAfter returns the report of a sync that read the account folder
// after this call: what an operator's change through the proxy needs. It
// marks a new folder generation, then syncs until the report's generation
// reaches it. A sync it only joined (one already running elsewhere) may
// have read the folder before the change; then it syncs again, which runs
// a sync of its own or joins one that started after the mark.
func (s *Syncer) SyncAfter(ctx context.Context) (Report, error) {
	gen, err := s.rdb.Incr(ctx, genKey).Result()
	if err != nil {
		return Report{}, fmt.Errorf("sync generation: %w", err)
	}
	for {
		rep, err := s.Sync(ctx)
		if err != nil || rep.Generation >= gen {
			return rep, err
		}
	}
}

// generation is the folder generation marked so far (0 before any mark).
func (s *Syncer) generation(ctx context.Context) (int64, error) {
	gen, err := s.rdb.Get(ctx, genKey).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sync generation: %w", err)
	}
	return gen, nil
}

func newRunID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("sync id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// locked runs the sync under m, keeps m alive while it runs, publishes the
// report and releases m as soon as the report is out.
func (s *Syncer) locked(ctx context.Context, m *redsync.Mutex, id string) (Report, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.keepLock(ctx, m, stop)
	}()
	rep, err := s.run(ctx)
	rep.ID = id
	if err != nil {
		rep.Error = err.Error()
	}
	// The report is written even when ctx ended (a cancelled sync still
	// tells what it did), and before the unlock, so that a replica that
	// sees the lock gone finds the report.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if werr := s.publish(wctx, rep); werr != nil {
		s.cfg.Log.WithError(werr).Warn("could not store the sync report")
	}
	close(stop)
	wg.Wait()
	if _, uerr := m.UnlockContext(wctx); uerr != nil {
		s.cfg.Log.WithError(uerr).Warn("could not release the sync lock; it expires by itself")
	}
	if s.cfg.OnRun != nil {
		s.cfg.OnRun(err == nil)
	}
	log := s.cfg.Log.WithField("replica", s.host)
	switch {
	case errors.Is(err, ErrNoAccountDir):
		// Not an error of the sync: the first start of a new install, said
		// once by the caller as a warning with what to create.
		log.WithError(err).Debug(rep.String())
	case err != nil:
		log.WithError(err).Error(rep.String())
	default:
		log.Info(rep.String())
	}
	return rep, err
}

// keepLock extends the lock while the sync runs, so that a sync slower
// than LockTTL is never joined by a second one. It uses wall time on
// purpose: the lock expires in Redis time.
func (s *Syncer) keepLock(ctx context.Context, m *redsync.Mutex, stop <-chan struct{}) {
	t := time.NewTicker(max(s.cfg.LockTTL/3, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			if ok, err := m.ExtendContext(ctx); !ok {
				s.cfg.Log.WithError(err).Warn("could not extend the sync lock")
			}
		}
	}
}

func (s *Syncer) publish(ctx context.Context, rep Report) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode sync report: %w", err)
	}
	// A plain pipeline: the two keys live in different cluster slots.
	pipe := s.rdb.Pipeline()
	pipe.Set(ctx, runPrefix+rep.ID, b, runTTL)
	pipe.Set(ctx, lastKey, b, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("store sync report: %w", err)
	}
	return nil
}

// join waits for the sync holding the lock and returns its report. ok is
// false when there is no report to return: the lock was already gone when
// we looked, or its holder died without writing one.
func (s *Syncer) join(ctx context.Context) (rep Report, ok bool, err error) {
	id, err := s.rdb.Get(ctx, lockKey).Result()
	if errors.Is(err, redis.Nil) {
		return Report{}, false, nil
	}
	if err != nil {
		return Report{}, false, fmt.Errorf("sync lock: %w", err)
	}
	t := time.NewTimer(joinPoll)
	defer t.Stop()
	for {
		b, err := s.rdb.Get(ctx, runPrefix+id).Bytes()
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &rep); err != nil {
				return Report{}, false, fmt.Errorf("sync report: %w", err)
			}
			rep.Joined = true
			return rep, true, nil
		case !errors.Is(err, redis.Nil):
			return Report{}, false, fmt.Errorf("sync report: %w", err)
		}
		// No report yet: is the run still holding the lock?
		cur, err := s.rdb.Get(ctx, lockKey).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return Report{}, false, fmt.Errorf("sync lock: %w", err)
		}
		if cur != id {
			// Released or expired with no report written before: look
			// once more (publish happens before unlock), then give up.
			if n, err := s.rdb.Exists(ctx, runPrefix+id).Result(); err == nil && n == 1 {
				continue
			}
			return Report{}, false, nil
		}
		t.Reset(joinPoll)
		select {
		case <-ctx.Done():
			return Report{}, false, fmt.Errorf("waiting for the running sync: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Last returns the latest sync's report, nil if none ran yet.
func (s *Syncer) Last(ctx context.Context) (*Report, error) {
	b, err := s.rdb.Get(ctx, lastKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read last sync: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read last sync: %w", err)
	}
	return &r, nil
}

// Run syncs every interval (on the configured clock) until ctx ends. The
// sync at start is the caller's, so that it happens before serving. A
// non-positive interval disables periodic syncs. Errors are logged; the
// next tick retries.
func (s *Syncer) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		<-ctx.Done()
		return
	}
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

func (s *Syncer) run(ctx context.Context) (rep Report, err error) {
	start := s.cfg.Clock.Now()
	rep = Report{StartedAt: start.UTC(), Replica: s.host, Added: []string{}, Updated: []string{}, Removed: []string{}, Skipped: []string{}}
	// Named results: the duration must land in the report returned.
	defer func() { rep.Duration = s.cfg.Clock.Now().Sub(start) }()
	// Read before the folder: every change marked up to it is in the files.
	if rep.Generation, err = s.generation(ctx); err != nil {
		return rep, err
	}
	tierOf, err := s.syncAccounts(ctx, &rep)
	if err != nil {
		return rep, err
	}
	var binds map[string]string
	if err := s.syncKeys(ctx, tierOf, &rep, &binds); err != nil {
		return rep, err
	}
	if !s.countsAgree(ctx, tierOf, binds) {
		dropped, err := s.pool.Recount(ctx)
		if err != nil {
			return rep, err
		}
		rep.BindingsMoved += dropped
	}
	if s.rf != nil {
		// The sync itself succeeded; a re-plan failure is the refresher's
		// to retry (it re-plans on its own schedule too).
		if err := s.rf.Replan(ctx); err != nil {
			s.cfg.Log.WithError(err).Warn("refresh re-plan after sync failed")
		}
	}
	return rep, nil
}

// syncAccounts puts every file's account in Redis and removes the accounts
// whose file is gone. It returns each account's tier after the sync.
func (s *Syncer) syncAccounts(ctx context.Context, rep *Report) (map[string]string, error) {
	if st, err := os.Stat(s.cfg.AccountDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s", ErrNoAccountDir, s.cfg.AccountDir)
	}
	files, bad := accounts.LoadDir(s.cfg.AccountDir, func(t string) bool { _, ok := s.cfg.Tiers.Get(t); return ok })
	// A file that exists but cannot be read right now (an operator
	// mid-edit, a typo) must not cost the account its keys: its Redis
	// state stays as it is until the file is fixed or deleted.
	keep := map[string]bool{}
	for _, b := range bad {
		rep.Skipped = append(rep.Skipped, b.Error())
		s.cfg.Log.WithField("path", b.Path).Warnf("skipping account file: %v", b.Err)
		if name, ok := strings.CutSuffix(filepath.Base(b.Path), ".json"); ok {
			keep[name] = true
		}
	}
	existing, err := s.as.All(ctx)
	if err != nil {
		return nil, err
	}
	have := make(map[string]accounts.Account, len(existing))
	for _, a := range existing {
		have[a.Name] = a
	}
	tierOf := make(map[string]string, len(files))
	for _, a := range files {
		tierOf[a.Name] = a.Tier
		old, known := have[a.Name]
		// Put replaces the account hash in one script, so a request never
		// sees a half-written account; SetTier moves it between member
		// sets in one script. Neither is a delete-then-rewrite.
		if err := s.as.Put(ctx, a); err != nil {
			return nil, err
		}
		if err := s.pool.SetTier(ctx, a.Name, a.Tier); err != nil {
			return nil, err
		}
		if _, err := s.pool.SetDisabled(ctx, a.Name, a.Disabled); err != nil {
			return nil, err
		}
		switch {
		case !known:
			rep.Added = append(rep.Added, a.Name)
		default:
			// What Redis holds now (Put may have kept a refresh newer than
			// the file) tells whether anything the proxy uses changed.
			cur, err := s.as.Get(ctx, a.Name)
			if err != nil {
				return nil, err
			}
			if cur.Fingerprint() != old.Fingerprint() || cur.Path != old.Path {
				rep.Updated = append(rep.Updated, a.Name)
			}
		}
	}
	for _, a := range existing {
		if _, ok := tierOf[a.Name]; ok {
			continue
		}
		if keep[a.Name] {
			tierOf[a.Name] = a.Tier
			continue
		}
		// Pool first: once the account is out of its tier, its keys bind
		// elsewhere, so no request reaches an account whose credentials
		// were already deleted.
		moved, err := s.pool.Remove(ctx, a.Name)
		if err != nil {
			return nil, err
		}
		if err := s.as.Delete(ctx, a.Name); err != nil {
			return nil, fmt.Errorf("delete account %s: %w", a.Name, err)
		}
		if f, ok := s.rf.(forgetter); ok {
			// Its refresh state (attempts, cooldown, dead token) must not
			// haunt an account re-added later under the same name.
			if err := f.Forget(ctx, a.Name); err != nil {
				s.cfg.Log.WithError(err).Warnf("could not clear refresh state of %s", a.Name)
			}
		}
		rep.Removed = append(rep.Removed, a.Name)
		rep.BindingsMoved += moved
	}
	return tierOf, nil
}

// forgetter is a refresher that can drop an account's refresh state.
type forgetter interface {
	Forget(ctx context.Context, name string) error
}

// syncKeys brings back every ledger key Redis lacks, with its binding,
// frees the slots of keys that are revoked or expired, and unbinds keys
// whose account moved to another tier. tierOf is each account's tier;
// bindsOut gets the bindings it read at its end.
func (s *Syncer) syncKeys(ctx context.Context, tierOf map[string]string, rep *Report, bindsOut *map[string]string) error {
	recs, err := s.ledger.All(ctx)
	if err != nil {
		return fmt.Errorf("read ledger: %w", err)
	}
	now := s.cfg.Clock.Now()
	var old []keys.Record                            // past retention
	live := make(map[string]string, len(recs))       // key hash → tier, for active keys
	ledgerAcct := make(map[string]string, len(recs)) // key hash → the ledger's account
	// In chunks: a sync after a flush restores every key, and one round
	// trip per key and step was most of its time at 100,000 keys.
	const chunk = 2000
	for start := 0; start < len(recs); start += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		in := recs[start:min(start+chunk, len(recs))]
		// Revocations and expiry changes go both ways: what Redis took
		// and the ledger missed is written to the ledger first, so a
		// flushed store can never bring a revoked key back.
		var part []keys.Record
		var fixed int
		err := retryTimeouts(ctx, func() error {
			var err error
			part, fixed, err = s.reconcile(ctx, in)
			return err
		})
		if err != nil {
			return err
		}
		rep.LedgerRepaired += fixed
		var restore, inactive []keys.Record
		var binds []accounts.BindingRestore
		for _, r := range part {
			if end := ended(r, now); s.cfg.Retention > 0 && !end.IsZero() && now.Sub(end) >= s.cfg.Retention {
				old = append(old, r)
				continue
			}
			restore = append(restore, r)
			if r.Active(now) != nil {
				inactive = append(inactive, r)
				continue
			}
			live[r.Hash] = r.Tier
			ledgerAcct[r.Hash] = r.Account
			if tier, ok := s.cfg.Tiers.Get(r.Tier); ok && r.Account != "" {
				binds = append(binds, accounts.BindingRestore{KeyHash: r.Hash, Tier: tier.Name, Slots: tier.Slots, Account: r.Account})
			}
		}
		// The bindings go back before the records: once the record is
		// there the key is usable, and a request arriving in between
		// would otherwise bind it to some other account.
		if err := retryTimeouts(ctx, func() error { return s.restoreBindings(ctx, binds, rep) }); err != nil {
			return err
		}
		if err := retryTimeouts(ctx, func() error { return s.restoreRecords(ctx, restore, rep) }); err != nil {
			return err
		}
		for _, r := range inactive {
			// A revoked key is retired (never bound again, also after a
			// flush); an expired one may be extended later.
			free := s.pool.Release
			if r.Status == keys.StatusRevoked {
				free = s.pool.Retire
			}
			released, err := free(ctx, r.Hash)
			if err != nil {
				return fmt.Errorf("release key %s: %w", r.ID, err)
			}
			if released {
				rep.SlotsReleased++
			}
		}
	}
	if err := s.archive(ctx, old, now, rep); err != nil {
		return err
	}
	// A key bound to an account that now serves another tier would be
	// moved on its next request anyway; unbinding it now keeps the slot
	// counts of the account's new tier true.
	var binds map[string]string
	err = retryTimeouts(ctx, func() error {
		var err error
		binds, err = s.pool.Bindings(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("read bindings: %w", err)
	}
	*bindsOut = binds
	// A request may rebind such a key between the read and the release;
	// releasing that fresh binding only makes it bind once more, never
	// refuses it.
	for h, acct := range binds {
		keyTier, ok := live[h]
		if !ok {
			continue
		}
		if ledgerAcct[h] != acct {
			// The ledger missed a binding (its write is off the request
			// path and may have failed): write it, so that a flushed store
			// brings the key back to the account it really uses.
			if err := s.ks.SetAccount(ctx, h, acct); err != nil {
				return fmt.Errorf("record binding of %s: %w", keys.ID(h), err)
			}
			rep.LedgerBindings++
		}
		if at, ok := tierOf[acct]; ok && at != keyTier {
			released, err := s.pool.Release(ctx, h)
			if err != nil {
				return fmt.Errorf("release key %s: %w", keys.ID(h), err)
			}
			if released {
				rep.BindingsMoved++
			}
		}
	}
	return nil
}

// Batched forms of the key steps, used when the stores have them
// (keys.Store, accounts.Pool); fakes in tests may offer only the one-key
// methods.
type batchKeys interface {
	ReconcileMany(ctx context.Context, recs []keys.Record) ([]keys.Record, int, error)
	RestoreMany(ctx context.Context, recs []keys.Record) (int, error)
}

type batchPool interface {
	RestoreBindings(ctx context.Context, rs []accounts.BindingRestore) (int, error)
}

func (s *Syncer) reconcile(ctx context.Context, recs []keys.Record) ([]keys.Record, int, error) {
	if b, ok := s.ks.(batchKeys); ok {
		out, n, err := b.ReconcileMany(ctx, recs)
		if err != nil {
			return nil, 0, fmt.Errorf("reconcile keys: %w", err)
		}
		return out, n, nil
	}
	out := make([]keys.Record, len(recs))
	n := 0
	for i, r := range recs {
		r, fixed, err := s.ks.Reconcile(ctx, r)
		if err != nil {
			return nil, 0, err
		}
		if fixed {
			n++
		}
		out[i] = r
	}
	return out, n, nil
}

func (s *Syncer) restoreBindings(ctx context.Context, rs []accounts.BindingRestore, rep *Report) error {
	if b, ok := s.pool.(batchPool); ok {
		n, err := b.RestoreBindings(ctx, rs)
		rep.BindingsRestored += n
		if err != nil {
			return fmt.Errorf("restore bindings: %w", err)
		}
		return nil
	}
	for _, r := range rs {
		ok, err := s.pool.RestoreBinding(ctx, r.KeyHash, r.Tier, r.Slots, r.Account)
		if err != nil {
			return fmt.Errorf("restore binding of %s: %w", keys.ID(r.KeyHash), err)
		}
		if ok {
			rep.BindingsRestored++
		}
	}
	return nil
}

func (s *Syncer) restoreRecords(ctx context.Context, recs []keys.Record, rep *Report) error {
	if b, ok := s.ks.(batchKeys); ok {
		n, err := b.RestoreMany(ctx, recs)
		rep.KeysRestored += n
		if err != nil {
			return fmt.Errorf("restore keys: %w", err)
		}
		return nil
	}
	for _, r := range recs {
		restored, err := s.ks.Restore(ctx, r)
		if err != nil {
			return fmt.Errorf("restore key %s: %w", r.ID, err)
		}
		if restored {
			rep.KeysRestored++
		}
	}
	return nil
}

// ended is when a key stopped being usable: its revocation, or its expiry
// once past; zero for a key still active.
func ended(r keys.Record, now time.Time) time.Time {
	if r.Status == keys.StatusRevoked {
		if r.RevokedAt.IsZero() {
			return r.Created
		}
		return r.RevokedAt
	}
	if !r.Expires.IsZero() && !now.Before(r.Expires) {
		return r.Expires
	}
	return time.Time{}
}

// archive moves keys past KEY_RETENTION to PRODUCT_DIR/archive (ledger
// first: once archived there, losing the Redis side is harmless) and drops
// their record, pool state and usage totals from Redis. It runs under the
// sync lock, like the rest of the sync.
func (s *Syncer) archive(ctx context.Context, old []keys.Record, now time.Time, rep *Report) error {
	a, ok := s.ledger.(Archiver)
	if len(old) == 0 || !ok {
		return nil
	}
	if err := a.Archive(ctx, old, func(r keys.Record) time.Time { return ended(r, now) }); err != nil {
		return fmt.Errorf("archive keys: %w", err)
	}
	for _, r := range old {
		if pf, ok := s.pool.(poolForgetter); ok {
			if err := pf.ForgetKey(ctx, r.Hash); err != nil {
				return fmt.Errorf("archive key %s: %w", r.ID, err)
			}
		}
		if kf, ok := s.ks.(keyForgetter); ok {
			if err := kf.Forget(ctx, r); err != nil {
				return fmt.Errorf("archive key %s: %w", r.ID, err)
			}
		}
		if s.cfg.Usage != nil {
			if err := s.cfg.Usage.Forget(ctx, r.Hash); err != nil {
				return fmt.Errorf("archive key %s: %w", r.ID, err)
			}
		}
		rep.KeysArchived++
	}
	return nil
}
