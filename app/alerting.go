package app

import (
	"context"
	"sync"
	"time"

	"github.com/claude-route/claude-route/alerts"
)

// AlertConfig is the operator's alerting (see package alerts).
type AlertConfig struct {
	// WebhookURL is ALERT_WEBHOOK_URL; empty keeps events for the
	// dashboard only.
	WebhookURL string
	// WatchEvery is how often the pool is compared (default 5 s).
	WatchEvery time.Duration
	// RetryBase is the first retry delay of a failed post (default 2 s).
	RetryBase time.Duration
}

// alertParts are the alerting pieces an App owns.
type alertParts struct {
	Alerts  *alerts.Sender
	Watcher *alerts.Watcher
}

// assembleAlerts builds the sender and the pool watcher.
func (a *App) assembleAlerts() {
	cfg := a.Cfg.Alerts
	a.Alerts = alerts.New(a.Store.Client, alerts.Config{URL: cfg.WebhookURL, RetryBase: cfg.RetryBase,
		Clock: a.Cfg.Clock, Log: a.Cfg.Log.WithField("component", "alerts")})
	a.Watcher = &alerts.Watcher{Pool: a.Pool, Tiers: a.Tiers.Names,
		SlotsOf: func(t string) int {
			if tr, ok := a.Tiers.Get(t); ok {
				return tr.Slots
			}
			return 0
		},
		Out: a.Alerts, Accounts: a.Accounts, Clock: a.Cfg.Clock, Every: cfg.WatchEvery}
}

// runAlerts starts the sender and the watcher under wg until ctx ends.
func (a *App) runAlerts(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		a.Alerts.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		a.Watcher.Run(ctx)
	}()
}

// refreshAlerts tells the alerts about a refresh given up. It reads
// a.Alerts when called: the refresher is built before the sender.
type refreshAlerts struct{ a *App }

func (r refreshAlerts) RefreshGaveUp(account, reason string) {
	if r.a.Alerts == nil {
		return
	}
	r.a.Alerts.Emit(alerts.Event{Event: alerts.RefreshGaveUp, Account: account,
		Text:    "claude-route: the OAuth refresh of account " + account + " was given up: " + reason + ". Replace its credentials (claude-route account replace) and recover it.",
		Details: map[string]any{"reason": reason}})
}
