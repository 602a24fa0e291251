package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/claude-route/claude-route/store"
)

// storeFileEvery is how often the embedded store is written to STORE_FILE:
// a crash loses at most this much of its changes.
const storeFileEvery = 5 * time.Second

// restoreStore fills a new embedded store from STORE_FILE. A file that
// does not load stops the start: starting empty would overwrite it with
// an empty store a few seconds later.
func (a *App) restoreStore(ctx context.Context) error {
	st, log := a.Store, a.Cfg.Log
	if st.Embedded == nil {
		return nil
	}
	if a.Cfg.StoreFile == "" {
		log.Warnf("REDIS_URL is empty: using an embedded in-process store at %s (password known only to this process); nothing is kept after a restart (STORE_FILE is empty): keys and bindings come back from the ledger at the next sync", st.Embedded.Addr())
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := (&store.FileSaver{Path: a.Cfg.StoreFile, Client: st.Client}).Load(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("%w (move the file away to start with an empty store)", err)
	}
	log.Warnf("REDIS_URL is empty: using an embedded in-process store at %s (password known only to this process), kept in STORE_FILE %s every %s and at shutdown; %d keys restored", st.Embedded.Addr(), a.Cfg.StoreFile, storeFileEvery, n)
	return nil
}

// runStoreFile runs the embedded store's clock and its snapshots. The
// embedded store counts keys' time to live down only when told, so each
// second it is told how much time passed: a key expires as on Redis (the
// alerts' 15-minute dedup, usage buckets). Every storeFileEvery the store
// is written to STORE_FILE.
func (a *App) runStoreFile(ctx context.Context, wg *sync.WaitGroup) {
	m := a.Store.Embedded
	if m == nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastSave := time.Now(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
				if a.Cfg.StoreFile != "" && now.Sub(lastSave) >= storeFileEvery {
					lastSave = now
					a.saveStoreFileCtx(ctx)
				}
			}
		}
	}()
}

// saveStoreFile writes the embedded store once more at shutdown.
func (a *App) saveStoreFile() {
	if a.Store.Embedded == nil || a.Cfg.StoreFile == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.saveStoreFileCtx(ctx)
}

func (a *App) saveStoreFileCtx(ctx context.Context) {
	err := (&store.FileSaver{Path: a.Cfg.StoreFile, Client: a.Store.Client}).Save(ctx, time.Now())
	a.storeFileErr.Lock()
	defer a.storeFileErr.Unlock()
	switch {
	case err != nil && err.Error() != a.storeFileErr.last:
		a.Cfg.Log.WithError(err).Error("the embedded store was not written to STORE_FILE; retrying")
		a.storeFileErr.last = err.Error()
	case err == nil && a.storeFileErr.last != "":
		a.Cfg.Log.Info("the embedded store is written to STORE_FILE again")
		a.storeFileErr.last = ""
	}
}
