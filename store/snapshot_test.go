package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/store"
)

// Every type the service keeps survives a save and a restore into a new
// embedded store; a key whose time to live ran out while down does not.
func TestSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	first, err := store.Open("", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	c := first.Client
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Set(ctx, "cr:sync:last", `{"id":"x"}`, 0).Err())
	must(c.HSet(ctx, "cr:{pool}:bl", "o1", `{"reason":"invalid"}`, "o2", "b").Err())
	must(c.RPush(ctx, "cr:alert:recent", "e1", "e2", "e3").Err())
	must(c.SAdd(ctx, "cr:{pool}:tier:high", "o1", "o2").Err())
	must(c.ZAdd(ctx, "cr:rl:h:sonnet", redis.Z{Member: "a", Score: 1.5}, redis.Z{Member: "b", Score: 1e15 + 3}).Err())
	must(c.Set(ctx, "cr:alert:once:x", "1", 15*time.Minute).Err())
	must(c.Set(ctx, "cr:short", "1", 2*time.Second).Err())

	path := filepath.Join(t.TempDir(), "data", "store.snapshot")
	saved := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	must((&store.FileSaver{Path: path, Client: c}).Save(ctx, saved))

	second, err := store.Open("", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	c2 := second.Client
	n, err := (&store.FileSaver{Path: path, Client: c2}).Load(ctx, saved.Add(time.Minute))
	if err != nil || n != 6 {
		t.Fatalf("restored %d keys, %v; want 6 (the 2 s key expired while down)", n, err)
	}
	if v := c2.Get(ctx, "cr:sync:last").Val(); v != `{"id":"x"}` {
		t.Errorf("string: %q", v)
	}
	if v := c2.HGetAll(ctx, "cr:{pool}:bl").Val(); v["o1"] != `{"reason":"invalid"}` || v["o2"] != "b" {
		t.Errorf("hash: %v", v)
	}
	if v := c2.LRange(ctx, "cr:alert:recent", 0, -1).Val(); len(v) != 3 || v[0] != "e1" || v[2] != "e3" {
		t.Errorf("list: %v", v)
	}
	if v := c2.SMembers(ctx, "cr:{pool}:tier:high").Val(); len(v) != 2 {
		t.Errorf("set: %v", v)
	}
	if v := c2.ZRangeWithScores(ctx, "cr:rl:h:sonnet", 0, -1).Val(); len(v) != 2 || v[0].Score != 1.5 || v[1].Score != 1e15+3 {
		t.Errorf("zset: %v", v)
	}
	if ttl := c2.PTTL(ctx, "cr:alert:once:x").Val(); ttl > 14*time.Minute+time.Second || ttl < 13*time.Minute {
		t.Errorf("ttl after a minute down: %v, want about 14 min", ttl)
	}
	if c2.Exists(ctx, "cr:short").Val() != 0 {
		t.Error("a key that expired while down was restored")
	}
	// No file yet: nothing to restore, no error.
	if n, err := (&store.FileSaver{Path: filepath.Join(t.TempDir(), "none"), Client: c2}).Load(ctx, saved); n != 0 || err != nil {
		t.Fatalf("missing file: %d, %v", n, err)
	}
}
