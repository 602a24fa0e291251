package refresh

import (
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/clock"
)

// Defaults, taken from the seed and from docs/upstream.md. Every value stays
// configurable because the OAuth endpoint is reverse-engineered.
const (
	DefaultTokenURL    = "https://platform.claude.com/v1/oauth/token"
	DefaultClientID    = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
	DefaultLead        = time.Minute
	DefaultGlobalLock  = 60 * time.Second
	DefaultMargin      = 5 * time.Second
	DefaultCooldown    = 3 * time.Minute
	DefaultMaxAttempts = 3
	DefaultWindow      = 24 * time.Hour
	DefaultLockExpiry  = time.Minute
	DefaultLockWait    = 10 * time.Second
	DefaultRetryDelay  = 30 * time.Second
)

// Config tunes the refresher. Zero fields take the defaults above.
type Config struct {
	TokenURL string // refresh endpoint (JSON body)
	ClientID string // client id sent with every refresh

	// Lead: refresh at the latest this long before a token expires.
	Lead time.Duration
	// GlobalLock: after any successful refresh, no scheduled refresh starts
	// for this long, across replicas.
	GlobalLock time.Duration
	// Margin is added to GlobalLock between two planned refreshes, so that
	// the token call itself fits between them.
	Margin time.Duration
	// Cooldown: no new attempt on an account this long after a failure.
	Cooldown time.Duration
	// MaxAttempts token calls per account per AttemptWindow (a success
	// resets the count).
	MaxAttempts   int
	AttemptWindow time.Duration

	// LockExpiry is the per-account redsync lock's expiry; the work done
	// under it is bounded to half of it so the lock cannot lapse mid-refresh.
	LockExpiry time.Duration
	// LockWait bounds how long a timer waits for another holder of the
	// account lock (RefreshNow waits as long as its context allows).
	LockWait time.Duration
	// RetryDelay: when the store is unreachable or the lock stays taken,
	// try the account again after this long.
	RetryDelay time.Duration

	HTTPClient *http.Client
	// OnOutcome, if set, hears each refresh's outcome ("success",
	// "failure", "blocked", "retry_later", "gave_up") for metrics.
	OnOutcome func(outcome string)
	// GaveUp, if set, hears each account whose refresh was given up (the
	// operator's alerts); it must not block.
	GaveUp GaveUpNotifier
	Clock  clock.Clock
	Logger *logrus.Entry
}

func (c Config) withDefaults() Config {
	if c.TokenURL == "" {
		c.TokenURL = DefaultTokenURL
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	setDur(&c.Lead, DefaultLead)
	setDur(&c.GlobalLock, DefaultGlobalLock)
	setDur(&c.Margin, DefaultMargin)
	setDur(&c.Cooldown, DefaultCooldown)
	setDur(&c.AttemptWindow, DefaultWindow)
	setDur(&c.LockExpiry, DefaultLockExpiry)
	setDur(&c.LockWait, DefaultLockWait)
	setDur(&c.RetryDelay, DefaultRetryDelay)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = logrus.NewEntry(logrus.StandardLogger())
	}
	return c
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// callTimeout bounds one token call plus the writes after it, so the work
// always ends while the account lock is still held.
func (c Config) callTimeout() time.Duration { return c.LockExpiry / 2 }
