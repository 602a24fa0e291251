package keys

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/testenv"
)

func TestIssueAuthenticate(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.open(t))
			key, rec, err := f.store.Issue(ctx, "trial", 24*time.Hour, "alice", "acct-1")
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckFormat(key); err != nil {
				t.Fatalf("issued key: %v", err)
			}
			want := Record{
				ID: ID(Hash(key)), Hash: Hash(key), Prefix: Prefix(key), Tier: "trial",
				Status: StatusActive, Note: "alice", Account: "acct-1",
				Created: t0, Expires: t0.Add(24 * time.Hour),
			}
			if rec != want {
				t.Fatalf("Issue record = %+v\nwant %+v", rec, want)
			}
			got, err := f.store.Authenticate(ctx, key)
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			want.Account = "" // Redis does not keep the binding; the pool does
			if got != want {
				t.Fatalf("Authenticate = %+v\nwant %+v", got, want)
			}

			// The hot path reads the same record through a pipeline.
			pipe := f.rdb.Pipeline()
			cmd := f.store.QueueGet(ctx, pipe, Hash(key))
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if r, err := ParseRecord(Hash(key), cmd.Val()); err != nil || r != want {
				t.Fatalf("QueueGet/ParseRecord = %+v, %v", r, err)
			}

			if _, err := f.store.Authenticate(ctx, Generate()); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown key: %v, want ErrNotFound", err)
			}
			if _, err := f.store.Authenticate(ctx, key[:len(key)-1]+"-"); !errors.Is(err, ErrFormat) {
				t.Fatalf("malformed key: %v, want ErrFormat", err)
			}
		})
	}
}

func TestAuthenticateFormatBeforeStore(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	_ = rdb.Close() // any store access now fails
	if _, err := f.store.Authenticate(context.Background(), "sk-cli-v1-short"); !errors.Is(err, ErrFormat) {
		t.Fatalf("Authenticate on a closed store = %v, want ErrFormat without a store call", err)
	}
}

func TestIssueValidation(t *testing.T) {
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	cases := []struct {
		name, tier, note string
		validity         time.Duration
	}{
		{"path in tier", "../x", "", 0},
		{"empty tier", "", "", 0},
		{"upper-case tier", "Trial", "", 0},
		{"negative validity", "trial", "", -time.Hour},
		{"long note", "trial", strings.Repeat("n", MaxNoteLen+1), 0},
		{"invalid UTF-8 note", "trial", "\xff", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := f.store.Issue(context.Background(), c.tier, c.validity, c.note, ""); err == nil {
				t.Fatal("Issue accepted it")
			}
		})
	}
	if n := rdb.DBSize(context.Background()).Val(); n != 0 {
		t.Fatalf("rejected issues left %d Redis keys", n)
	}
}

func TestExpiry(t *testing.T) {
	ctx := context.Background()
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	day, _ := f.issue(t, "trial", 24*time.Hour, "")
	forever, _ := f.issue(t, "high", 0, "")

	f.clk.Advance(24*time.Hour - time.Millisecond)
	if _, err := f.store.Authenticate(ctx, day); err != nil {
		t.Fatalf("1 ms before expiry: %v", err)
	}
	f.clk.Advance(time.Millisecond)
	rec, err := f.store.Authenticate(ctx, day)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: %v, want ErrExpired", err)
	}
	if rec.ID != ID(Hash(day)) {
		t.Fatalf("an expired key's record should come back for logging, got %+v", rec)
	}
	f.clk.Advance(10 * 365 * 24 * time.Hour)
	if _, err := f.store.Authenticate(ctx, forever); err != nil {
		t.Fatalf("validity 0 after ten years: %v", err)
	}
}

func TestGetAndRevoke(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.open(t))
			key, rec := f.issue(t, "medium", 0, "bob")

			for _, ref := range []string{key, rec.ID, rec.Hash, " " + rec.ID + "\n"} {
				got, err := f.store.Get(ctx, ref)
				if err != nil || got.Hash != rec.Hash {
					t.Fatalf("Get(ref) = %+v, %v", got, err)
				}
			}
			for _, ref := range []string{Generate(), "k_000000000000", strings.Repeat("0", 64), "bob", ""} {
				if _, err := f.store.Get(ctx, ref); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
				}
			}
			if _, err := f.store.Get(ctx, "sk-cli-v1-nope"); !errors.Is(err, ErrFormat) {
				t.Fatalf("Get(malformed key) = %v, want ErrFormat", err)
			}

			f.clk.Advance(time.Minute)
			revokedAt := t0.Add(time.Minute)
			got, err := f.store.Revoke(ctx, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != StatusRevoked || !got.RevokedAt.Equal(revokedAt) {
				t.Fatalf("Revoke = %+v", got)
			}
			if _, err := f.store.Authenticate(ctx, key); !errors.Is(err, ErrRevoked) {
				t.Fatalf("Authenticate after revoke = %v, want ErrRevoked", err)
			}

			// Again, by key: no error, and the first revocation time stays.
			f.clk.Advance(time.Hour)
			if again, err := f.store.Revoke(ctx, key); err != nil || !again.RevokedAt.Equal(revokedAt) {
				t.Fatalf("second Revoke = %+v, %v", again, err)
			}
			led := ledgerRecord(t, f, rec.Hash)
			if led.Status != StatusRevoked || !led.RevokedAt.Equal(revokedAt) {
				t.Fatalf("ledger after revoke = %+v", led)
			}
			if _, err := f.store.Revoke(ctx, Generate()); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Revoke(unknown) = %v, want ErrNotFound", err)
			}
		})
	}
}

func ledgerRecord(t *testing.T, f *fixture, hash string) Record {
	t.Helper()
	all, err := f.store.Ledger().All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.Hash == hash {
			return r
		}
	}
	t.Fatalf("ledger has no record %s", ID(hash))
	return Record{}
}

func TestList(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.open(t))
			// Issued in this order, a minute apart, so List's order is known.
			_, a := f.issue(t, "trial", time.Hour, "Alice laptop")
			f.clk.Advance(time.Minute)
			_, bb := f.issue(t, "trial", 0, "bob")
			f.clk.Advance(time.Minute)
			_, c := f.issue(t, "high", 0, "carol")
			f.clk.Advance(time.Minute)
			_, d := f.issue(t, "supreme", 0, "dave")
			if _, err := f.store.Revoke(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			f.clk.Advance(time.Hour) // a expires
			// Another package's key must not confuse the scan.
			f.rdb.Set(ctx, "cr:keyid:zz", "x", 0)

			cases := []struct {
				name string
				f    Filter
				want []Record
			}{
				{"all, oldest first", Filter{}, []Record{a, bb, c, d}},
				{"tier", Filter{Tier: "trial"}, []Record{a, bb}},
				{"active", Filter{Status: StatusActive}, []Record{bb, d}},
				{"revoked", Filter{Status: StatusRevoked}, []Record{c}},
				{"expired", Filter{Status: StatusExpired}, []Record{a}},
				{"tier and status", Filter{Tier: "trial", Status: StatusActive}, []Record{bb}},
				{"note, any case", Filter{Query: "alice"}, []Record{a}},
				{"id", Filter{Query: d.ID[2:9]}, []Record{d}},
				{"prefix", Filter{Query: bb.Prefix[:14]}, []Record{bb}},
				{"nothing", Filter{Tier: "medium"}, nil},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					got, err := f.store.List(ctx, tc.f)
					if err != nil {
						t.Fatal(err)
					}
					if ids(got) != ids(tc.want) {
						t.Fatalf("List = %s, want %s", ids(got), ids(tc.want))
					}
					// Each visits the same records, in no order.
					var each []Record
					if err := f.store.Each(ctx, tc.f, func(r Record) { each = append(each, r) }); err != nil {
						t.Fatal(err)
					}
					sortRecords(each)
					if ids(each) != ids(tc.want) {
						t.Fatalf("Each = %s, want %s", ids(each), ids(tc.want))
					}
				})
			}
		})
	}
}

func ids(rs []Record) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

func TestSetAccount(t *testing.T) {
	ctx := context.Background()
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	_, rec := f.issue(t, "high", 0, "")
	if err := f.store.SetAccount(ctx, rec.Hash, "acct-7"); err != nil {
		t.Fatal(err)
	}
	if got := ledgerRecord(t, f, rec.Hash); got.Account != "acct-7" {
		t.Fatalf("ledger account = %q", got.Account)
	}
	// Works without the Redis record too (searches every tier file).
	rdb.FlushDB(ctx)
	if err := f.store.SetAccount(ctx, rec.Hash, "acct-8"); err != nil {
		t.Fatal(err)
	}
	if got := ledgerRecord(t, f, rec.Hash); got.Account != "acct-8" {
		t.Fatalf("ledger account = %q", got.Account)
	}
	if err := f.store.SetAccount(ctx, Hash(Generate()), "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetAccount(unknown) = %v, want ErrNotFound", err)
	}
}

func TestRawKeyNeverStored(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.open(t))
			var raw []string
			for i, tier := range []string{"trial", "high", "supreme"} {
				k, rec := f.issue(t, tier, time.Hour, "note")
				raw = append(raw, k[len(KeyPrefix):]) // the secret part
				if i == 1 {
					if _, err := f.store.Revoke(ctx, k); err != nil {
						t.Fatal(err)
					}
				}
				if err := f.store.SetAccount(ctx, rec.Hash, "acct"); err != nil {
					t.Fatal(err)
				}
			}
			dump := dumpRedis(t, f.rdb)
			files, _ := filepath.Glob(filepath.Join(f.dir, "*"))
			for _, p := range files {
				bs, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				dump += string(bs)
			}
			if !strings.Contains(dump, "note") {
				t.Fatal("dump is empty; the test would prove nothing")
			}
			for _, s := range raw {
				if strings.Contains(dump, s) {
					t.Fatal("a raw key is stored in Redis or the ledger")
				}
			}
		})
	}
}

// dumpRedis renders every key name and value of the database.
func dumpRedis(t *testing.T, rdb redis.UniversalClient) string {
	t.Helper()
	ctx := context.Background()
	names, err := scanKeys(ctx, rdb, "*")
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, n := range names {
		sb.WriteString(n + "\n")
		switch typ := rdb.Type(ctx, n).Val(); typ {
		case "string":
			sb.WriteString(rdb.Get(ctx, n).Val())
		case "hash":
			for k, v := range rdb.HGetAll(ctx, n).Val() {
				sb.WriteString(k + "=" + v + "\n")
			}
		default:
			t.Fatalf("unexpected %s key %s", typ, n)
		}
	}
	return sb.String()
}

func TestRestoreAfterFlush(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, b.open(t))
			live, _ := f.issue(t, "trial", 24*time.Hour, "live")
			dead, deadRec := f.issue(t, "high", 0, "dead")
			if _, err := f.store.Revoke(ctx, dead); err != nil {
				t.Fatal(err)
			}
			before, err := f.store.List(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}

			testenv.Flush(t, f.rdb)
			if _, err := f.store.Authenticate(ctx, live); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after flush: %v, want ErrNotFound", err)
			}

			all, err := f.store.Ledger().All(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range all {
				if ok, err := f.store.Restore(ctx, r); err != nil || !ok {
					t.Fatalf("Restore(%s) = %v, %v; want true", r.ID, ok, err)
				}
			}
			after, err := f.store.List(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(before, after) {
				t.Fatalf("restored records differ:\n%+v\n%+v", before, after)
			}
			if _, err := f.store.Authenticate(ctx, live); err != nil {
				t.Fatalf("restored key: %v", err)
			}
			if _, err := f.store.Authenticate(ctx, dead); !errors.Is(err, ErrRevoked) {
				t.Fatalf("restored revoked key: %v, want ErrRevoked", err)
			}
			if r, err := f.store.Get(ctx, deadRec.ID); err != nil || r.Hash != deadRec.Hash {
				t.Fatalf("id index not restored: %+v, %v", r, err)
			}
			for _, r := range all {
				if ok, err := f.store.Restore(ctx, r); err != nil || ok {
					t.Fatalf("second Restore(%s) = %v, %v; want false", r.ID, ok, err)
				}
			}
		})
	}
}

func TestRestoreAppliesRevocation(t *testing.T) {
	ctx := context.Background()
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	key, rec := f.issue(t, "trial", 0, "")
	rec.Status, rec.RevokedAt = StatusRevoked, t0.Add(time.Hour)
	if ok, err := f.store.Restore(ctx, rec); err != nil || !ok {
		t.Fatalf("Restore = %v, %v; want true", ok, err)
	}
	if _, err := f.store.Authenticate(ctx, key); !errors.Is(err, ErrRevoked) {
		t.Fatalf("a revocation in the ledger must win: %v", err)
	}
	bad := rec
	bad.ID = "k_000000000000"
	if _, err := f.store.Restore(ctx, bad); err == nil {
		t.Fatal("Restore accepted a record whose id does not match its hash")
	}
}

func TestRevokeWhileRedisFlushed(t *testing.T) {
	ctx := context.Background()
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	key, rec := f.issue(t, "medium", 0, "")
	rdb.FlushDB(ctx)
	got, err := f.store.Revoke(ctx, rec.ID)
	if err != nil {
		t.Fatalf("Revoke by id from the ledger: %v", err)
	}
	if got.Status != StatusRevoked {
		t.Fatalf("Revoke = %+v", got)
	}
	if _, err := f.store.Authenticate(ctx, key); !errors.Is(err, ErrRevoked) {
		t.Fatalf("after revoke: %v, want ErrRevoked (restored as revoked)", err)
	}
}

func TestIssueRollsBackWhenLedgerFails(t *testing.T) {
	ctx := context.Background()
	rdb, _ := testenv.Mini(t)
	f := newFixture(t, rdb)
	// The ledger folder is a regular file: every write fails.
	blocker := filepath.Join(t.TempDir(), "product")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewStore(rdb, NewLedger(blocker, nil), f.clk)
	if _, _, err := s.Issue(ctx, "trial", 0, "", ""); err == nil {
		t.Fatal("Issue succeeded without a ledger")
	}
	if n := rdb.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("a key that is not in the ledger stayed in Redis (%d keys)", n)
	}
}
