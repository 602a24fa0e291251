package refresh

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"
)

// After a successful token call the refresh token that was used is dead:
// the new tokens must reach the store and the account file. Both writes
// are retried, because a store that answers one call late (past its
// client's read timeout, on a loaded machine) is not a reason to lose
// them: the file is what a store that lost its data is synced from, and a
// file left with the dead refresh token would get the account blacklisted
// (invalid_grant) at the first refresh after such a sync.

// keepTries bounds the tries of each write, 100 ms then 200 ms apart.
const keepTries = 3

// again runs fn until it succeeds, keepTries times at most, or ctx ends.
func again(ctx context.Context, fn func() error) error {
	var err error
	for try := range keepTries {
		if try > 0 {
			t := time.NewTimer(time.Duration(try) * 100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
		if err = fn(); err == nil {
			return nil
		}
	}
	return err
}

// swap stores next in place of the credentials whose refresh token was
// used (compare-and-set). A try that failed may still have been applied,
// its answer lost: when a later try finds used gone, the store is read,
// and holding next itself is our own success, not a change made by
// someone else meanwhile.
func (r *Refresher) swap(ctx context.Context, name, used string, next Creds) (bool, error) {
	var ok, failed bool
	err := again(ctx, func() error {
		var err error
		ok, err = r.st.SwapCredentials(ctx, name, used, next)
		failed = failed || err != nil
		return err
	})
	if err != nil || ok || !failed {
		return ok, err
	}
	cur, err := r.st.Credentials(ctx, name)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(cur.RefreshToken), []byte(next.RefreshToken)) == 1, nil
}

// writeBack writes next to the account's file (FileWriter), retried.
func (r *Refresher) writeBack(ctx context.Context, name string, next Creds) error {
	return again(ctx, func() error { return r.fw.WriteBack(ctx, name, next) })
}
