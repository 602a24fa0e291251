package cache

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func newAt(ttl time.Duration, now *time.Time) *Map[int] {
	c := New[int](ttl)
	c.now = func() time.Time { return *now }
	return c
}

func TestMap(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		ttl  time.Duration
		// run acts on the cache and reports the value of "k" that Get then sees.
		run    func(c *Map[int], now *time.Time)
		want   int
		wantOK bool
	}{
		{"put then get", time.Second, func(c *Map[int], _ *time.Time) { c.Put("k", c.Begin(), 1) }, 1, true},
		{"live until just before ttl", time.Second, func(c *Map[int], now *time.Time) {
			c.Put("k", c.Begin(), 1)
			*now = now.Add(time.Second - time.Nanosecond)
		}, 1, true},
		{"gone at ttl", time.Second, func(c *Map[int], now *time.Time) {
			c.Put("k", c.Begin(), 1)
			*now = now.Add(time.Second)
		}, 0, false},
		{"life counts from the read's start, not the put", time.Second, func(c *Map[int], now *time.Time) {
			f := c.Begin()
			*now = now.Add(700 * time.Millisecond) // a slow read
			c.Put("k", f, 1)
			*now = now.Add(300 * time.Millisecond)
		}, 0, false},
		{"drop forgets", time.Second, func(c *Map[int], _ *time.Time) {
			c.Put("k", c.Begin(), 1)
			c.Drop("k")
		}, 0, false},
		{"a fill begun before a drop is discarded", time.Second, func(c *Map[int], _ *time.Time) {
			gen := c.Begin() // the read starts
			c.Drop("k")      // a local write lands meanwhile
			c.Put("k", gen, 1)
		}, 0, false},
		{"a fill begun before a flush is discarded", time.Second, func(c *Map[int], _ *time.Time) {
			gen := c.Begin()
			c.Flush()
			c.Put("k", gen, 1)
		}, 0, false},
		{"a fill begun after a drop is kept", time.Second, func(c *Map[int], _ *time.Time) {
			c.Drop("k")
			c.Put("k", c.Begin(), 2)
		}, 2, true},
		{"flush forgets every key", time.Second, func(c *Map[int], _ *time.Time) {
			c.Put("k", c.Begin(), 1)
			c.Put("other", c.Begin(), 1)
			c.Flush()
		}, 0, false},
		{"ttl 0 caches nothing", 0, func(c *Map[int], _ *time.Time) { c.Put("k", c.Begin(), 1) }, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			c := newAt(tc.ttl, &now)
			tc.run(c, &now)
			got, ok := c.Get("k")
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("Get = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// The map never holds more than maxEntries: expired entries are swept
// first, and a map full of live entries starts over.
func TestMapIsBounded(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	c := newAt(time.Second, &now)
	for i := range maxEntries {
		c.Put(strconv.Itoa(i), c.Begin(), i)
	}
	now = now.Add(2 * time.Second) // all expired
	c.Put("fresh", c.Begin(), 1)
	if n := c.Len(); n != 1 {
		t.Fatalf("after a sweep of expired entries: %d entries, want 1", n)
	}
	for i := range maxEntries + 10 {
		c.Put(strconv.Itoa(i), c.Begin(), i)
	}
	if n := c.Len(); n > maxEntries {
		t.Fatalf("%d entries, want at most %d", n, maxEntries)
	}
}

// Concurrent readers, fillers and droppers: run with -race.
func TestMapConcurrent(t *testing.T) {
	c := New[int](time.Second)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 1000 {
				k := strconv.Itoa(j % 7)
				switch (i + j) % 4 {
				case 0:
					c.Drop(k)
				case 1:
					c.Flush()
				default:
					gen := c.Begin()
					c.Put(k, gen, j)
					c.Get(k)
				}
			}
		})
	}
	wg.Wait()
}
