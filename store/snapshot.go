package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claude-route/claude-route/internal/atomicfile"
)

// The embedded store keeps its data in STORE_FILE: a snapshot taken every
// few seconds and at shutdown, restored at start. A snapshot is one Lua
// script, so it is one instant of the store, as an RDB save would be
// (scripts run alone: no admission or binding is ever half in it).

// dumpScript returns every key of the database with its type, its time to
// live in milliseconds (-1: none) and its value: a string, a flat list of
// field, value (hash) or member, score (sorted set), or the members (list,
// set).
var dumpScript = redis.NewScript(`
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k)
  if type(t) == 'table' then t = t.ok end
  local v
  if t == 'string' then v = {redis.call('GET', k)}
  elseif t == 'hash' then v = redis.call('HGETALL', k)
  elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)
  elseif t == 'set' then v = redis.call('SMEMBERS', k)
  elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
  end
  if v then
    out[#out + 1] = {k, t, tostring(redis.call('PTTL', k)), v}
  end
end
return out
`)

// snapshot is STORE_FILE's content.
type snapshot struct {
	Version int           `json:"version"`
	SavedAt time.Time     `json:"saved_at"`
	Keys    []snapshotKey `json:"keys"`
}

type snapshotKey struct {
	Key  string `json:"k"`
	Type string `json:"t"`
	// TTLms is the time the key had left when saved; 0 for none.
	TTLms int64    `json:"ttl_ms,omitempty"`
	Val   []string `json:"v"`
}

// Snapshot reads the whole store in one script.
func Snapshot(ctx context.Context, rdb redis.Cmdable, now time.Time) ([]byte, error) {
	res, err := dumpScript.Run(ctx, rdb, nil).Slice()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	snap := snapshot{Version: 1, SavedAt: now.UTC(), Keys: make([]snapshotKey, 0, len(res))}
	for _, r := range res {
		row, ok := r.([]any)
		if !ok || len(row) != 4 {
			return nil, fmt.Errorf("snapshot: unexpected row %v", r)
		}
		k := snapshotKey{Key: fmt.Sprint(row[0]), Type: fmt.Sprint(row[1])}
		if ttl, _ := strconv.ParseInt(fmt.Sprint(row[2]), 10, 64); ttl > 0 {
			k.TTLms = ttl
		}
		vals, _ := row[3].([]any)
		for _, v := range vals {
			k.Val = append(k.Val, fmt.Sprint(v))
		}
		snap.Keys = append(snap.Keys, k)
	}
	return json.Marshal(snap)
}

// Restore writes a snapshot into an empty store. Keys whose time to live
// ran out while the process was down are left out, as Redis would have
// expired them. It returns the number of keys restored.
func Restore(ctx context.Context, rdb redis.Cmdable, b []byte, now time.Time) (int, error) {
	var snap snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	if snap.Version != 1 {
		return 0, fmt.Errorf("restore: unknown snapshot version %d", snap.Version)
	}
	down := max(now.Sub(snap.SavedAt), 0)
	pipe := rdb.Pipeline()
	n := 0
	for _, k := range snap.Keys {
		ttl := time.Duration(k.TTLms) * time.Millisecond
		if k.TTLms > 0 {
			if ttl -= down; ttl <= 0 {
				continue
			}
		}
		switch k.Type {
		case "string":
			if len(k.Val) != 1 {
				return 0, fmt.Errorf("restore %s: a string with %d values", k.Key, len(k.Val))
			}
			pipe.Set(ctx, k.Key, k.Val[0], 0)
		case "hash":
			pipe.HSet(ctx, k.Key, toAny(k.Val)...)
		case "list":
			pipe.RPush(ctx, k.Key, toAny(k.Val)...)
		case "set":
			pipe.SAdd(ctx, k.Key, toAny(k.Val)...)
		case "zset":
			zs := make([]redis.Z, 0, len(k.Val)/2)
			for i := 0; i+1 < len(k.Val); i += 2 {
				score, err := strconv.ParseFloat(k.Val[i+1], 64)
				if err != nil {
					return 0, fmt.Errorf("restore %s: score %q: %w", k.Key, k.Val[i+1], err)
				}
				zs = append(zs, redis.Z{Member: k.Val[i], Score: score})
			}
			pipe.ZAdd(ctx, k.Key, zs...)
		default:
			return 0, fmt.Errorf("restore %s: unknown type %q", k.Key, k.Type)
		}
		if k.TTLms > 0 {
			pipe.PExpire(ctx, k.Key, ttl)
		}
		n++
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("restore: %w", err)
	}
	return n, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// FileSaver writes snapshots of a store to one file, atomically.
type FileSaver struct {
	Path   string
	Client redis.Cmdable
}

// Save takes a snapshot and replaces the file with it. It writes even an
// unchanged store: the time of saving is what a restore counts the
// downtime from.
func (f *FileSaver) Save(ctx context.Context, now time.Time) error {
	b, err := Snapshot(ctx, f.Client, now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return fmt.Errorf("STORE_FILE: %w", err)
	}
	if err := atomicfile.Write(f.Path, b); err != nil {
		return fmt.Errorf("STORE_FILE: %w", err)
	}
	return nil
}

// Load restores the file into the store; a missing file restores nothing.
func (f *FileSaver) Load(ctx context.Context, now time.Time) (int, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("STORE_FILE: %w", err)
	}
	return Restore(ctx, f.Client, b, now)
}
