package server

import (
	"context"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/login"
	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/refresh"
	"github.com/claude-route/claude-route/route"
	"github.com/claude-route/claude-route/syncer"
	"github.com/claude-route/claude-route/usage"
)

// The server's view of its collaborators. Each is declared here, where it
// is consumed, and kept to the methods the server calls; the concrete types
// live in their own packages.

// KeyStore is the client-key store.
type KeyStore interface {
	Issue(ctx context.Context, tier string, validity time.Duration, note, account string) (string, keys.Record, error)
	IssueMany(ctx context.Context, tier string, validity time.Duration, note string, n int) ([]string, []keys.Record, error)
	// IssueManyWith is IssueMany with every option (validity from first use).
	IssueManyWith(ctx context.Context, sp keys.IssueSpec, n int) ([]string, []keys.Record, error)
	// IssueWith issues with every option (validity from first use).
	IssueWith(ctx context.Context, sp keys.IssueSpec) (string, keys.Record, error)
	// Activate starts a not-activated key's validity at its first use.
	Activate(ctx context.Context, hash string, at time.Time) (time.Time, bool, error)
	Get(ctx context.Context, ref string) (keys.Record, error)
	List(ctx context.Context, f keys.Filter) ([]keys.Record, error)
	// Page lists the ledger's keys in creation order, a page at a time.
	Page(ctx context.Context, f keys.Filter, cursor string, limit int) ([]keys.Record, string, error)
	// Each calls fn for every record that matches f, in no order.
	Each(ctx context.Context, f keys.Filter, fn func(keys.Record)) error
	Revoke(ctx context.Context, ref string) (keys.Record, error)
	SetAccount(ctx context.Context, hash, account string) error
	SetExpiry(ctx context.Context, ref string, until time.Time) (keys.Record, error)
	SetNote(ctx context.Context, ref, note string) (keys.Record, error)
	// SetBudgets replaces the key's own budgets (zero windows: the tier's).
	SetBudgets(ctx context.Context, ref string, b keys.Budgets) (keys.Record, error)
	SetTier(ctx context.Context, ref, from, to string) (keys.Record, error)
}

// Pool binds keys to accounts.
type Pool interface {
	Bind(ctx context.Context, keyHash, tier string, slots int) (accounts.Binding, error)
	BindTo(ctx context.Context, keyHash, tier string, slots int, account string) (accounts.Binding, error)
	BindKey(ctx context.Context, keyHash, tier string, slots int, expires time.Time) (accounts.Binding, error)
	Release(ctx context.Context, keyHash string) (bool, error)
	Retire(ctx context.Context, keyHash string) (bool, error)
	Bindings(ctx context.Context) (map[string]string, error)
	Bound(ctx context.Context, keyHash string) (string, error)
	BoundMany(ctx context.Context, keyHashes []string) (map[string]string, error)
	SetDisabled(ctx context.Context, account string, disabled bool) (bool, error)
	Blacklist(ctx context.Context, account, reason string) error
	Recover(ctx context.Context, account string) (bool, error)
	Limit(ctx context.Context, account string, until time.Time) error
	// Passive health and overflow (accounts/health.go).
	Fail(ctx context.Context, account, byKeyHash string) (time.Time, error)
	Succeeded(ctx context.Context, account string) error
	View(ctx context.Context, tierNames []string, slotsOf func(string) int) (map[string][]accounts.AccountView, error)
	// ViewSlots is View without the bound-key counts (metrics).
	ViewSlots(ctx context.Context, tierNames []string, slotsOf func(string) int) (map[string][]accounts.AccountView, error)
}

// AccountStore holds upstream credentials.
type AccountStore interface {
	Get(ctx context.Context, name string) (accounts.Account, error)
	All(ctx context.Context) ([]accounts.Account, error)
}

// Limiter admits requests into the 5-hour windows.
type Limiter interface {
	Peek(ctx context.Context, r ratelimit.Request) (ratelimit.Result, error)
}

// Refresher renews OAuth tokens.
type Refresher interface {
	RefreshNow(ctx context.Context, name, seenAccess string) (refresh.Creds, error)
	Status(ctx context.Context) ([]refresh.Status, error)
	// Forget and Replan: a recovered account starts its refresh afresh.
	Forget(ctx context.Context, name string) error
	Replan(ctx context.Context) error
}

// UsageRecorder keeps token totals.
type UsageRecorder interface {
	Record(ctx context.Context, keyHash, account, family string, u usage.Usage) error
	// RecordModel is Record with the model, so cost is priced per model.
	RecordModel(ctx context.Context, keyHash, account, family, model string, u usage.Usage) error
	Key(ctx context.Context, keyHash string) (usage.Summary, error)
	Account(ctx context.Context, name string) (usage.Summary, error)
	Overall(ctx context.Context) (usage.Summary, error)
	KeyDays(ctx context.Context, keyHash string, since, until time.Time) ([]usage.Day, error)
	// Series: the last 24 h in 5-minute points, of a key or ("") of all.
	Series(ctx context.Context, keyHash string) ([]usage.Point, error)
}

// Syncer runs the full account-folder and ledger sync.
type Syncer interface {
	Sync(ctx context.Context) (syncer.Report, error)
	// SyncAfter: a sync that read the folder after the call.
	SyncAfter(ctx context.Context) (syncer.Report, error)
	Last(ctx context.Context) (*syncer.Report, error)
}

// Pinger reports store health.
type Pinger interface {
	Ping(ctx context.Context) error
}

// UtilObserver takes the rate-limit headers of an account's latest answer;
// it never blocks and parses nothing on the response path.
type UtilObserver interface {
	ObserveHeaders(account string, h map[string][]string, at time.Time)
}

// LoginFlow runs `account login`'s sign-ins (package login); a started
// login is kept in the store, so any replica finishes it.
type LoginFlow interface {
	Start(ctx context.Context, tier, name string) (login.Started, error)
	Finish(ctx context.Context, id, pasted string) (login.Started, login.Tokens, error)
}

// RouteStores are the stores the router reads and writes, in package
// route's own terms: the overflow choice reads the tier's other accounts
// in the same pipeline as the choice itself.
type RouteStores struct {
	Pipelines route.Pipeliner // the store's client
	Pool      route.Pool
	Accounts  route.Accounts
}
