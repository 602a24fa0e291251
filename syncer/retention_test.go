package syncer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/keys"
)

// Past KEY_RETENTION after revocation or expiry, sync moves a key to
// PRODUCT_DIR/archive/<tier>-<yyyy-mm>.jsonl and removes it from Redis
// and the live ledger; a key still within retention, or active, stays.
func TestSyncArchivesKeysPastRetention(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		const retention = 90 * 24 * time.Hour
		log := logrus.New()
		log.SetOutput(e.logs)
		e.s = New(e.rdb, Config{AccountDir: e.acctDir, Tiers: e.tiers, Clock: e.clk, Log: log, LockTTL: 5 * time.Second, Retention: retention},
			e.accounts, e.pool, e.ledger, e.keys, nil)
		e.apiKeyFile("trial", "t1", "sk-ant-api03-T1")
		e.apiKeyFile("high", "h1", "sk-ant-api03-H1")
		e.sync()
		revoked := e.issue("high", true)
		if _, err := e.keys.Revoke(e.ctx, revoked.Hash); err != nil {
			t.Fatal(err)
		}
		expired := e.issueFor("trial", time.Hour, true)
		active := e.issue("high", true)

		e.clk.Advance(retention - time.Minute)
		if rep := e.sync(); rep.KeysArchived != 0 {
			t.Fatalf("archived within retention: %s", rep)
		}
		e.clk.Advance(2 * time.Hour)
		rep := e.sync()
		if rep.KeysArchived != 2 {
			t.Fatalf("report %s: archived %d, want 2", rep, rep.KeysArchived)
		}
		all, err := e.ledger.All(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 1 || all[0].Hash != active.Hash {
			t.Fatalf("live ledger holds %v, want only the active key", all)
		}
		for _, r := range []keys.Record{revoked, expired} {
			if _, err := e.keys.Get(e.ctx, r.Hash); err == nil {
				t.Fatalf("archived key %s still in Redis", r.ID)
			}
			if n, _ := e.rdb.Exists(e.ctx, "cr:keyid:"+r.ID).Result(); n != 0 {
				t.Fatalf("archived key %s keeps its id index", r.ID)
			}
			if b := e.bound(r.Hash); b != "" {
				t.Fatalf("archived key %s still bound to %s", r.ID, b)
			}
		}
		month := t0.Format("2006-01")
		for tier, want := range map[string]string{"high": revoked.Hash, "trial": expired.Hash} {
			f, err := os.Open(filepath.Join(e.prodDir, "archive", tier+"-"+month+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			var lines []map[string]any
			for sc.Scan() {
				var v map[string]any
				if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
					t.Fatalf("archive line %q: %v", sc.Text(), err)
				}
				lines = append(lines, v)
			}
			f.Close()
			if len(lines) != 1 || lines[0]["hash"] != want {
				t.Fatalf("%s archive: %v", tier, lines)
			}
		}
		if used := e.used(); used["h1"] != "1" || used["t1"] != "" && used["t1"] != "0" {
			t.Fatalf("slots used %v", used)
		}
		// Nothing comes back, also after a flush.
		e.flush()
		if rep := e.sync(); rep.KeysRestored != 1 || rep.KeysArchived != 0 {
			t.Fatalf("after flush: %s", rep)
		}
	})
}
