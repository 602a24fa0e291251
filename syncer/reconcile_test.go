package syncer

import (
	"testing"
	"time"

	"github.com/claude-route/claude-route/keys"
)

// A revocation Redis took while its ledger write failed, and an expiry
// change whose ledger write failed, are copied into the ledger by sync:
// after FLUSHALL and another sync the key is still refused.
func TestSyncCopiesRedisRevocationsAndExpiriesIntoTheLedger(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
		e.sync()
		revoked := e.issue("high", true)
		shortened := e.issue("high", true)
		// What Revoke and SetExpiry write to Redis before their ledger
		// write, which here never happens.
		revokedAt := t0.Add(time.Minute)
		if err := e.rdb.HSet(e.ctx, "cr:key:"+revoked.Hash, "status", "revoked", "revoked", revokedAt.UnixMilli()).Err(); err != nil {
			t.Fatal(err)
		}
		expires := t0.Add(2 * time.Hour)
		if err := e.rdb.HSet(e.ctx, "cr:key:"+shortened.Hash, "expires", expires.UnixMilli()).Err(); err != nil {
			t.Fatal(err)
		}

		rep := e.sync()
		if rep.LedgerRepaired != 2 {
			t.Fatalf("report %s, ledger repaired %d, want 2", rep, rep.LedgerRepaired)
		}
		if b := e.bound(revoked.Hash); b != "" {
			t.Fatalf("revoked key still holds a slot on %s", b)
		}

		e.flush()
		e.sync()
		e.clk.Advance(3 * time.Hour)
		for _, c := range []struct {
			rec  keys.Record
			want string
		}{{revoked, keys.StatusRevoked}, {shortened, keys.StatusExpired}} {
			got, err := e.keys.Get(e.ctx, c.rec.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if s := got.State(e.clk.Now()); s != c.want {
				t.Fatalf("key %s is %s after a flush, want %s", c.rec.ID, s, c.want)
			}
		}
		if got, _ := e.keys.Get(e.ctx, revoked.Hash); !got.RevokedAt.Equal(revokedAt) {
			t.Fatalf("revocation time %v, want %v", got.RevokedAt, revokedAt)
		}
		if got, _ := e.keys.Get(e.ctx, shortened.Hash); !got.Expires.Equal(expires) {
			t.Fatalf("expiry %v, want %v", got.Expires, expires)
		}
		if rep := e.sync(); rep.LedgerRepaired != 0 {
			t.Fatalf("a second sync repaired %d", rep.LedgerRepaired)
		}
	})
}
