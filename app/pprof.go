package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"
)

// pprofHandler serves the runtime profiles on a mux of its own: importing
// net/http/pprof also registers them on http.DefaultServeMux, which no
// listener of this service serves, and the public engine never routes
// /debug/pprof.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// servePprof binds PPROF_ADDR and serves the profiles under wg until ctx
// ends. Binding happens here, before anything else starts, so a taken
// port is a failed start rather than a silent absence.
func (a *App) servePprof(ctx context.Context, wg *sync.WaitGroup) error {
	addr := a.Cfg.PprofAddr
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("PPROF_ADDR: %w", err)
	}
	log := a.Cfg.Log.WithField("component", "pprof")
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		log.Warnf("PPROF_ADDR %s is not a loopback address: profiles show internals; keep it off any public network", addr)
	}
	log.Infof("profiles on http://%s/debug/pprof/", ln.Addr())
	hs := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Error("profile server stopped")
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		_ = hs.Close() // a 30 s CPU profile in progress is not worth waiting for
	}()
	return nil
}
