package app

import (
	"context"
	"sync"
	"time"
)

// runTiersFollow makes this replica follow a sync run anywhere: when the
// store's last sync report changes (an operator's `sync` reached another
// replica, or another replica's periodic sync ran), this replica re-reads
// TIERS_FILE too, so every replica serves the new table within about a
// second of the sync, not at its own next one.
func (a *App) runTiersFollow(ctx context.Context, wg *sync.WaitGroup) {
	if a.Tiers.Path() == "" {
		return // the built-in table never changes
	}
	every := a.Cfg.WatchInterval
	if every <= 0 {
		every = time.Second
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.followSyncs(ctx, every)
	}()
}

func (a *App) followSyncs(ctx context.Context, every time.Duration) {
	log := a.Cfg.Log.WithField("component", "tiers")
	t := time.NewTicker(every)
	defer t.Stop()
	seen, lastErr := "", ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last, err := a.Syncer.Last(ctx)
		if err != nil || last == nil || last.ID == seen {
			continue
		}
		// The first report seen is read too: a sync may have run between
		// this replica's start and its first look. A file unchanged since
		// it was loaded is no change.
		seen = last.ID
		changed, err := a.Tiers.Reload()
		switch {
		case err != nil && err.Error() != lastErr:
			log.WithError(err).Error("TIERS_FILE not reloaded after a sync")
			lastErr = err.Error()
		case err == nil && changed:
			log.Infof("TIERS_FILE reloaded after the sync run by %s: new limits apply to the next request", last.Replica)
			lastErr = ""
		}
	}
}
