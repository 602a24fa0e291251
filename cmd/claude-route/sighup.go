package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"
)

// syncOnHangup runs a full sync (which re-reads TIERS_FILE) on each SIGHUP,
// the usual "reload your configuration" signal, which would otherwise end
// the process. It stops when ctx ends or stop is called; stop waits for a
// sync under way.
func syncOnHangup(ctx context.Context, runSync func(context.Context) (string, error), log logrus.FieldLogger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
			}
			log.Info("SIGHUP: syncing (accounts, ledger and TIERS_FILE)")
			summary, err := runSync(ctx)
			if err != nil {
				log.WithError(err).Error("sync after SIGHUP failed")
				continue
			}
			log.Info(summary)
		}
	})
	return func() {
		signal.Stop(ch)
		cancel()
		wg.Wait()
	}
}
