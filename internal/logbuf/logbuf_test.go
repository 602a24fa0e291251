package logbuf

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines are batched, none is lost or split, and Close writes the rest.
func TestLinesArriveWholeAndBatched(t *testing.T) {
	out := &syncBuf{}
	w := New(out, time.Hour) // only size and Close flush here
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				_, _ = w.Write([]byte(strings.Repeat(string(rune('a'+i)), 20) + "\n"))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	for _, l := range lines {
		if len(l) != 20 || strings.Count(l, l[:1]) != 20 {
			t.Fatalf("a line was split or mixed: %q", l)
		}
	}
	if out.writes > 2 {
		t.Fatalf("%d writes for 16 KiB of lines, want them batched", out.writes)
	}
}

// A quiet line still goes out within the interval.
func TestFlushesEveryInterval(t *testing.T) {
	out := &syncBuf{}
	w := New(out, 10*time.Millisecond)
	defer w.Close()
	_, _ = w.Write([]byte("hello\n"))
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "hello\n" {
		if time.Now().After(deadline) {
			t.Fatal("the line was never flushed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
