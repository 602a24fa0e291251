package server

import (
	"github.com/claude-route/claude-route/admission"
	"github.com/claude-route/claude-route/app"
)

// ForApp builds the HTTP surface of an assembled App: the one mapping of
// the App's parts to the server's Deps, shared by `serve` and the tests.
// The App's account folder and upstream URL are the server's too, and the
// server becomes the App's observer (its metrics count refreshes, syncs
// and probes). Run the App with it: a.Run(ctx, ln, ForApp(cfg, a)).
func ForApp(cfg Config, a *app.App) *Server { return forApp(cfg, a, nil) }

// forApp is ForApp with change, when set, applied to the Deps before the
// server is built (tests put a fault between the server and a store).
func forApp(cfg Config, a *app.App, change func(*Deps)) *Server {
	cfg.AccountDir = a.Cfg.AccountDir
	cfg.UpstreamURL = a.Cfg.UpstreamURL
	d := Deps{
		Store: a.Store, Tiers: a.Tiers, Keys: a.Keys, Pool: a.Pool, Accounts: a.Accounts,
		Limiter: a.Limiter, Refresher: a.Refresher, Usage: a.Usage, Spend: a.Spend, Syncer: a.Syncer,
		Util: a.Util, Clock: a.Cfg.Clock, Log: a.Cfg.Log, Alerts: a.Alerts,
		Admission: admission.Stores{Keys: a.Keys, Pool: a.Pool, Accounts: a.Accounts, Limiter: a.Limiter,
			Leases: a.Leases, Spend: a.Spend, Batch: a.Batch},
		Routing: RouteStores{Pipelines: a.Store.Client, Pool: a.Pool, Accounts: a.Accounts},
	}
	if a.Login != nil { // a nil *login.Flow in the interface would not be nil
		d.Login = a.Login
	}
	if change != nil {
		change(&d)
	}
	s := New(cfg, d)
	a.Observe(s)
	return s
}
