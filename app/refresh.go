package app

import (
	"context"
	"errors"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/refresh"
)

// refreshStore adapts the account store to what the refresher consumes.
type refreshStore struct{ s *accounts.Store }

func (r refreshStore) OAuthAccounts(ctx context.Context) ([]refresh.Account, error) {
	all, err := r.s.All(ctx)
	if err != nil {
		return nil, err
	}
	var out []refresh.Account
	for _, a := range all {
		if a.Kind == accounts.OAuth && !a.SetupToken() { // a setup token has nothing to refresh with
			out = append(out, refresh.Account{Name: a.Name, Tier: a.Tier, ExpiresAt: a.ExpiresAt})
		}
	}
	return out, nil
}

func (r refreshStore) Credentials(ctx context.Context, name string) (refresh.Creds, error) {
	a, err := r.s.Get(ctx, name)
	if err != nil {
		return refresh.Creds{}, err
	}
	return refresh.Creds{AccessToken: a.AccessToken, RefreshToken: a.RefreshToken, ExpiresAt: a.ExpiresAt}, nil
}

func (r refreshStore) SwapCredentials(ctx context.Context, name, usedRefresh string, next refresh.Creds) (bool, error) {
	return r.s.SwapCredentials(ctx, name, usedRefresh, next.AccessToken, next.RefreshToken, next.ExpiresAt)
}

// refreshFiles writes refreshed tokens back to the account's file, inside
// the account folder only. A file that cannot be updated (a link outside
// the folder, a read-only Secret mount) is said once per account: Redis
// keeps the new tokens, and a sync never moves them backwards.
type refreshFiles struct {
	s    *accounts.Store
	root string
	log  logrus.FieldLogger
	said sync.Map // account name → true once its file was reported
}

func (r *refreshFiles) WriteBack(ctx context.Context, name string, c refresh.Creds) error {
	a, err := r.s.Get(ctx, name)
	if err != nil {
		return err
	}
	if a.Path == "" {
		return nil
	}
	err = accounts.WriteBack(r.root, a.Path, c.AccessToken, c.RefreshToken, c.ExpiresAt)
	if errors.Is(err, accounts.ErrNotWritable) {
		if _, said := r.said.LoadOrStore(name, true); !said {
			r.log.WithField("account", name).WithError(err).Warn("account file not updated; the refreshed tokens are kept in the store")
		}
		return nil
	}
	return err
}
