package app

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/concurrency"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/probe"
)

// CapacityConfig tunes how the pool follows the upstream's capacity.
type CapacityConfig struct {
	// Health: ACCOUNT_MAX_FAILS failures in a row within 60 s cool an
	// account for ACCOUNT_COOLDOWN.
	Health accounts.Health
	// QueueWait is how long a request over its key's concurrency waits
	// for a place (QUEUE_WAIT, default 30 s).
	QueueWait time.Duration
	// LeaseTTL bounds how long a crashed replica's places stay taken
	// (default 30 s).
	LeaseTTL time.Duration
	// ProbeInterval is how often credential-rejected accounts are probed
	// (PROBE_INTERVAL, default 30 m; negative turns probes off).
	ProbeInterval time.Duration
}

// capacityParts are the capacity pieces an App owns.
type capacityParts struct {
	// Util writes the latest utilization per account, batched, once a second.
	Util *accounts.UtilWriter
	// Leases limit each key's requests in flight across replicas.
	Leases *concurrency.Limiter
	// Prober brings back blacklisted accounts whose credential works again.
	Prober *probe.Prober
}

// assembleCapacity builds the capacity pieces on the App's store.
func (a *App) assembleCapacity() {
	cfg := a.Cfg.Capacity
	a.Pool.SetHealth(cfg.Health)
	rdb := a.Store.Client
	log := a.Cfg.Log.WithField("component", "capacity")
	a.Util = accounts.NewUtilWriter(rdb, time.Second, log)
	cc := concurrency.Config{QueueWait: cfg.QueueWait, LeaseTTL: cfg.LeaseTTL, Log: log}
	if _, wall := a.Cfg.Clock.(clock.Real); !wall {
		// A test's fake clock scores leases and times waits; production
		// uses Redis TIME, the one clock every replica shares.
		cc.Clock = a.Cfg.Clock
	}
	a.Leases = concurrency.New(rdb, cc)
	every := cfg.ProbeInterval
	if every == 0 {
		every = 30 * time.Minute
	}
	if every < 0 {
		every = 0 // PROBE_INTERVAL=0: off
	}
	a.Prober = &probe.Prober{Pool: a.Pool, Accounts: a.Accounts, HTTP: &http.Client{Timeout: time.Minute},
		UpstreamURL: a.Cfg.UpstreamURL, Interval: every, Clock: a.Cfg.Clock, Log: log,
		OnResult: func(r string) { a.observer().ProbeResult(r) },
		OnRecover: func(ctx context.Context, name string) {
			// A recovered account gets fresh refresh attempts and a timer again.
			if err := a.Refresher.Forget(ctx, name); err != nil {
				log.WithError(err).Warn("could not reset the refresh state")
			}
			if err := a.Refresher.Replan(ctx); err != nil {
				log.WithError(err).Warn("could not re-plan refreshes")
			}
		}}
}

// runCapacity starts the capacity goroutines under wg until ctx ends.
func (a *App) runCapacity(ctx context.Context, wg *sync.WaitGroup) {
	if err := a.Leases.Preload(ctx); err != nil {
		a.Cfg.Log.WithError(err).Warn("could not preload the concurrency script; it loads on first use")
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		a.Util.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		a.Prober.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		a.Leases.Run(ctx)
	}()
}
