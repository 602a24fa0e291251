package app

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/claude-route/claude-route/syncer"
)

// Run syncs once, then serves h on ln (and on AdminListener) with the
// refresher and the periodic sync running, until ctx ends; then it drains
// h, stops every background goroutine it started and writes what is still
// in memory (usage totals, the embedded store, the ledger's queue).
func (a *App) Run(ctx context.Context, ln net.Listener, h HTTP) error {
	log := a.Cfg.Log
	bgctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if err := a.servePprof(bgctx, &wg); err != nil {
		stop()
		return err
	}
	if err := a.Limiter.Preload(ctx); err != nil {
		log.WithError(err).Warn("could not preload the quota script; it loads on first use")
	}
	// A ledger still in the one-file-per-tier form becomes snapshots and
	// journals now, before anything reads or writes it.
	if err := a.Ledger.Migrate(ctx); err != nil {
		log.WithError(err).Error("could not migrate the ledger to its journal form; each tier migrates at its next change")
	}
	if rep, err := a.Syncer.Sync(ctx); errors.Is(err, syncer.ErrNoAccountDir) {
		// A new install: `serve` has already warned, once, what to create.
		log.WithError(err).Debug("initial sync skipped: no account folder yet")
	} else if err != nil {
		// A store that is down at start is not fatal: requests get 503 and
		// the watchdog below syncs as soon as the store answers.
		log.WithError(err).Error("initial sync failed: fix the cause and run `claude-route sync` (a store that was down is synced by itself when it answers)")
	} else {
		log.Debug(rep.String())
	}
	a.runCapacity(bgctx, &wg)
	a.runAlerts(bgctx, &wg)
	a.runTiersFollow(bgctx, &wg)
	a.runStoreFile(bgctx, &wg)
	wg.Add(4)
	go func() {
		defer wg.Done()
		a.Expirer.Run(bgctx)
	}()
	go func() {
		defer wg.Done()
		if err := a.Refresher.Run(bgctx); err != nil && bgctx.Err() == nil {
			log.WithError(err).Error("refresher stopped")
		}
	}()
	go func() {
		defer wg.Done()
		a.Syncer.Run(bgctx, a.Cfg.SyncInterval)
	}()
	go func() {
		defer wg.Done()
		a.watchStore(bgctx)
	}()
	wg.Add(2)
	go func() {
		defer wg.Done()
		// Spares: a key's next quota place taken ahead of it. It stops
		// after the server drained, settling every spare it held.
		a.Limiter.Run(bgctx)
	}()
	go func() {
		defer wg.Done()
		ulog := log.WithField("component", "usage")
		lastErr := ""
		a.Usage.Run(bgctx, a.Cfg.UsageFlushEvery, func(err error) {
			if err.Error() != lastErr { // said once per distinct cause
				ulog.WithError(err).Warn("usage totals not flushed; retrying every second")
				lastErr = err.Error()
			}
		})
	}()
	// Either listener ending (ctx, or a failure) ends both: a process
	// whose public listener died exits rather than living on with only its
	// admin surface.
	sctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	adminErr := make(chan error, 1)
	if a.AdminListener != nil {
		go func() {
			err := h.ServeAdmin(sctx, a.AdminListener, a.Cfg.ShutdownGrace)
			stopServing()
			adminErr <- err
		}()
	} else {
		adminErr <- nil
	}
	err := h.Serve(sctx, ln, a.Cfg.ShutdownGrace)
	stopServing()
	// Both surfaces drained before the background work stops.
	if aerr := <-adminErr; err == nil {
		err = aerr
	}
	stop()
	wg.Wait()
	a.flushUsage()
	a.saveStoreFile() // after the usage totals: they are in it
	a.closeLedger()
	return err
}

// closeLedger writes the ledger changes still queued (bindings of the
// last moment) once the requests have drained, then stops its writer.
func (a *App) closeLedger() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Ledger.Close(ctx); err != nil {
		a.Cfg.Log.WithError(err).Errorf("%d ledger changes not written at shutdown (sync writes bindings back from the store)", a.Ledger.Pending())
	}
}

// flushUsage writes the usage totals still in memory once the requests
// have drained (shutdown, SIGTERM): a graceful stop loses no token.
func (a *App) flushUsage() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		err := a.Usage.Flush(ctx)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			a.Cfg.Log.WithError(err).Errorf("usage totals of %d subjects lost at shutdown: the store did not take them", a.Usage.Unflushed())
			return
		}
		select { // a store that blinks gets a few tries; the batch is idempotent
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// watchStore syncs at once when the store comes back empty: Redis was
// flushed, restarted without persistence or failed over to an empty
// replica. Without it, customers would be refused until the next periodic
// sync. The sync report's presence is the marker of a synced store.
func (a *App) watchStore(ctx context.Context) {
	every := a.Cfg.WatchInterval
	if every <= 0 {
		// One small read a second: a failover to an empty replica is
		// repaired within about a second, not at the next periodic sync.
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastErr := ""
	var lastTry time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last, err := a.Syncer.Last(ctx)
		if err != nil || (last != nil && last.Error == "") {
			continue // store down (nothing to do yet) or synced
		}
		if last != nil && strings.Contains(last.Error, syncer.ErrNoAccountDir.Error()) {
			continue // an operator's fix, not a retry, ends this one
		}
		// A store without a report is synced at once; a failed sync is
		// retried at a calmer pace, as a full sync is not free.
		if last != nil && time.Since(lastTry) < watchRetry {
			continue
		}
		lastTry = time.Now()
		_, err = a.Syncer.Sync(ctx)
		switch {
		case err == nil:
			a.Cfg.Log.Warn("the store had no sync report (new, flushed or replaced): synced it")
			lastErr = ""
		case ctx.Err() == nil && err.Error() != lastErr:
			// Said once per distinct cause, not every tick.
			a.Cfg.Log.WithError(err).Error("sync failed; retrying in the background")
			lastErr = err.Error()
		}
	}
}

// watchRetry is how often the watchdog retries a sync that failed.
const watchRetry = 15 * time.Second
