// Package alerts tells the operator about trouble before customers do: a
// JSON POST to ALERT_WEBHOOK_URL per event (an account blacklisted or
// recovered, a refresh given up, an account limited or cooling, a tier
// nearly or completely full, the store down or back), and the last events
// in Redis for the dashboard.
//
// Every replica sees the same pool, so every replica detects the same
// event. The sender claims each event with SET NX on a key per event and
// subject that lives 15 minutes: the first replica to claim it sends it,
// the others drop it, and the same event for the same subject is not sent
// again within those 15 minutes. Emit only queues; the one sending
// goroutine (owned by App.Run) claims, records and posts, with retries, so
// no request ever waits on a webhook.
package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/internal/clock"
)

// Event names, the "event" field of the body.
const (
	AccountBlacklisted = "account_blacklisted"
	AccountRecovered   = "account_recovered"
	RefreshGaveUp      = "refresh_gave_up"
	AccountLimited     = "account_limited"
	AccountCooling     = "account_cooling"
	SetupTokenExpiring = "setup_token_expiring"
	TierNearlyFull     = "tier_nearly_full"
	TierFull           = "tier_full"
	StoreDown          = "store_down"
	StoreBack          = "store_back"
	Test               = "test"
)

// Redis keys (prefix cr:alert:).
const (
	keyRecent    = "cr:alert:recent" // LIST of the newest events' JSON, newest first
	keyOncePref  = "cr:alert:once:"  // + event + ":" + subject: SET NX, TTL Dedup
	recentLength = 50
)

// Defaults of Config.
const (
	DefaultDedup     = 15 * time.Minute
	DefaultRetryFor  = 10 * time.Minute
	DefaultQueue     = 256
	DefaultRetryBase = 2 * time.Second
	maxBackoff       = time.Minute
	// DefaultPostTimeout bounds one post, the wait for a free sender
	// included: a hung webhook never holds another alert longer.
	DefaultPostTimeout = 10 * time.Second
	// maxPosts is how many posts may be under way at once.
	maxPosts = 16
)

// Event is one alert, as posted and as kept in Redis.
type Event struct {
	Event   string    `json:"event"`
	At      time.Time `json:"at"`
	Account string    `json:"account,omitempty"`
	Tier    string    `json:"tier,omitempty"`
	Text    string    `json:"text"`
	// Content is Text again, for Discord (Slack reads text, Discord
	// content): one body serves both.
	Content string         `json:"content,omitempty"`
	Details map[string]any `json:"details,omitempty"`
	// State names the state this event reports, when it has a name of its
	// own (a blacklisting's start): the dedup drops repeats of the same
	// state only, so a flap (blacklisted, recovered, blacklisted again)
	// sends all three. Without it, the event and subject are the state.
	State string `json:"-"`
}

// subject is what the once-key is about: the account, else the tier, else
// nothing (store events, tests).
func (e Event) subject() string {
	switch {
	case e.Account != "":
		return "account:" + e.Account
	case e.Tier != "":
		return "tier:" + e.Tier
	}
	return "-"
}

// Config tunes the sender. Zero fields take the defaults.
type Config struct {
	// URL is ALERT_WEBHOOK_URL; empty keeps events in Redis only.
	URL string
	// Dedup: the same event for the same subject at most once this long.
	Dedup time.Duration
	// RetryFor: a failed post is retried with backoff for this long.
	RetryFor time.Duration
	// RetryBase is the first retry delay; it doubles up to a minute.
	RetryBase time.Duration
	// Queue bounds the events waiting for the sender; beyond it they are
	// dropped (and logged), never waited for.
	Queue int
	// PostTimeout bounds one post (default 10 s).
	PostTimeout time.Duration
	// Client posts; it never follows a redirect, whatever it is given.
	Client *http.Client
	Clock  clock.Clock
	Log    logrus.FieldLogger
}

func (c Config) withDefaults() Config {
	if c.Dedup <= 0 {
		c.Dedup = DefaultDedup
	}
	if c.RetryFor <= 0 {
		c.RetryFor = DefaultRetryFor
	}
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.Queue <= 0 {
		c.Queue = DefaultQueue
	}
	if c.PostTimeout <= 0 {
		c.PostTimeout = DefaultPostTimeout
	}
	client := http.Client{Timeout: c.PostTimeout}
	if c.Client != nil {
		client = *c.Client
	}
	// A redirect is refused, not followed: the webhook URL is the
	// operator's; a redirect could carry the alerts (account names,
	// reasons) elsewhere.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.Client = &client
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Log == nil {
		c.Log = logrus.New()
	}
	return c
}

// Sender queues, claims, records and posts events.
type Sender struct {
	rdb   redis.UniversalClient
	cfg   Config
	queue chan Event
	wake  chan struct{}

	mu    sync.Mutex
	retry []pending // posts waiting for their next attempt

	// posts are the posts under way, each in its own goroutine so that a
	// hung webhook holds only its own alert; Run waits for them.
	posts sync.WaitGroup
	slots chan struct{} // at most maxPosts at once
}

// pending is a post that failed and waits for another attempt.
type pending struct {
	ev       Event
	body     []byte
	first    time.Time // first attempt: retries end RetryFor after it
	next     time.Time
	attempts int
}

// New returns a sender on rdb; nothing runs until Run.
func New(rdb redis.UniversalClient, cfg Config) *Sender {
	cfg = cfg.withDefaults()
	return &Sender{rdb: rdb, cfg: cfg, queue: make(chan Event, cfg.Queue), wake: make(chan struct{}, 1),
		slots: make(chan struct{}, maxPosts)}
}

// Emit queues an event and returns at once; a full queue drops it (the
// sender is far behind, and a request must never wait for an alert).
func (s *Sender) Emit(e Event) {
	if e.At.IsZero() {
		e.At = s.cfg.Clock.Now()
	}
	e.At = e.At.UTC()
	select {
	case s.queue <- e:
	default:
		s.cfg.Log.WithField("event", e.Event).Warn("alert queue full: event dropped")
	}
}

// Run sends queued events and retries failed posts until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	var timer clock.Timer
	defer s.posts.Wait() // they end with ctx
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-s.queue:
			s.handle(ctx, e)
		case <-s.wake:
		}
		next, ok := s.retryDue(ctx)
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if ok {
			timer = s.cfg.Clock.AfterFunc(next.Sub(s.cfg.Clock.Now()), s.poke)
		}
	}
}

func (s *Sender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Send claims, records and posts one event now (the admin API's test
// event); it reports whether this replica sent it and the first post's error.
func (s *Sender) Send(ctx context.Context, e Event) (bool, error) {
	if e.At.IsZero() {
		e.At = s.cfg.Clock.Now()
	}
	e.At = e.At.UTC()
	claimed, body, err := s.claim(ctx, e)
	if err != nil || !claimed {
		return claimed, err
	}
	if s.cfg.URL == "" {
		return true, nil
	}
	if err := s.post(ctx, body); err != nil {
		s.schedule(pending{ev: e, body: body, first: s.cfg.Clock.Now(), attempts: 1})
		s.poke()
		return true, err
	}
	return true, nil
}

// handle claims an event and makes its first attempt.
func (s *Sender) handle(ctx context.Context, e Event) {
	claimed, body, err := s.claim(ctx, e)
	if err != nil {
		// Without the store there is no claim to make: sending from every
		// replica beats not sending (this is how "store down" gets out).
		s.cfg.Log.WithError(err).WithField("event", e.Event).Debug("alert not claimed (store unreachable): sending anyway")
	} else if !claimed {
		return
	}
	if s.cfg.URL == "" {
		return
	}
	s.deliver(ctx, pending{ev: e, body: body, first: s.cfg.Clock.Now()})
}

// deliver makes one attempt at p in a goroutine of its own, so that the
// next event is not held by this one's webhook; a failed attempt is
// scheduled again (or dropped once RetryFor has passed).
func (s *Sender) deliver(ctx context.Context, p pending) {
	s.posts.Add(1)
	go func() {
		defer s.posts.Done()
		err := s.post(ctx, p.body)
		if err == nil || ctx.Err() != nil {
			return
		}
		p.attempts++
		log := s.cfg.Log.WithError(err).WithField("event", p.ev.Event)
		switch {
		case s.cfg.Clock.Now().Sub(p.first) >= s.cfg.RetryFor:
			log.Errorf("alert webhook failed %d times over %s: event dropped", p.attempts, s.cfg.RetryFor)
			return
		case p.attempts == 1:
			log.Warn("alert webhook failed; retrying")
		}
		s.schedule(p)
		s.poke()
	}()
}

// claim takes the event's once-key and, when taken, adds the event to the
// recent list. The list is written only by the claimer, so each event
// appears in it once.
func (s *Sender) claim(ctx context.Context, e Event) (bool, []byte, error) {
	e.Content = e.Text
	body, err := json.Marshal(e)
	if err != nil {
		return false, nil, fmt.Errorf("alert body: %w", err)
	}
	once := keyOncePref + e.Event + ":" + e.subject()
	if e.State != "" {
		once += ":" + e.State
	}
	if e.Event == Test {
		once += ":" + e.At.Format(time.RFC3339Nano) // every test is its own event
	}
	ok, err := s.rdb.SetNX(ctx, once, e.At.Unix(), s.cfg.Dedup).Result()
	if err != nil {
		return false, body, fmt.Errorf("claim alert: %w", err)
	}
	if !ok {
		return false, body, nil
	}
	pipe := s.rdb.Pipeline()
	pipe.LPush(ctx, keyRecent, body)
	pipe.LTrim(ctx, keyRecent, 0, recentLength-1)
	if _, err := pipe.Exec(ctx); err != nil {
		s.cfg.Log.WithError(err).Warn("could not record the alert")
	}
	return true, body, nil
}

// post delivers one body; anything but a 2xx is a failure.
func (s *Sender) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PostTimeout)
	defer cancel()
	select { // the wait for a free sender counts in the post's own time
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		return fmt.Errorf("alert webhook: %d posts already under way: %w", maxPosts, ctx.Err())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("alert webhook: %w", redactURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert webhook answered %s", resp.Status)
	}
	return nil
}

// redactURL keeps the webhook URL (a secret for Slack and Discord) out of
// logs: a *url.Error carries it.
func redactURL(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		return ue.Unwrap()
	}
	return err
}

// backoff is the delay before attempt n+1 (n ≥ 1): base, 2·base, … ≤ 1 min.
func (s *Sender) backoff(n int) time.Duration {
	d := s.cfg.RetryBase
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (s *Sender) schedule(p pending) {
	p.next = s.cfg.Clock.Now().Add(s.backoff(p.attempts))
	s.mu.Lock()
	s.retry = append(s.retry, p)
	s.mu.Unlock()
}

// retryDue makes the attempts that are due and returns the next due time.
func (s *Sender) retryDue(ctx context.Context) (time.Time, bool) {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	var due, keep []pending
	for _, p := range s.retry {
		if !p.next.After(now) {
			due = append(due, p)
		} else {
			keep = append(keep, p)
		}
	}
	s.retry = keep
	s.mu.Unlock()
	for _, p := range due {
		if ctx.Err() != nil {
			return time.Time{}, false
		}
		s.deliver(ctx, p) // a failure schedules it again and wakes Run
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.retry) == 0 {
		return time.Time{}, false
	}
	sort.Slice(s.retry, func(i, j int) bool { return s.retry[i].next.Before(s.retry[j].next) })
	return s.retry[0].next, true
}

// Recent returns the last events recorded (at most 50), newest first.
func (s *Sender) Recent(ctx context.Context) ([]Event, error) {
	raw, err := s.rdb.LRange(ctx, keyRecent, 0, recentLength-1).Result()
	if err != nil {
		return nil, fmt.Errorf("recent alerts: %w", err)
	}
	out := make([]Event, 0, len(raw))
	for _, r := range raw {
		var e Event
		if json.Unmarshal([]byte(r), &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// Enabled reports whether a webhook is configured.
func (s *Sender) Enabled() bool { return s.cfg.URL != "" }
