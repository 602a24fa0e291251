package server

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadSized(t *testing.T) {
	cases := []struct {
		name          string
		body          string
		contentLength int64
		limit         int64
		wantErr       error
		wantCap       int // 0: not checked
	}{
		{"declared, pooled class", `{"model":"m"}`, 13, 1 << 20, nil, 16 << 10},
		{"declared, larger class", strings.Repeat("x", 20<<10), 20 << 10, 1 << 20, nil, 64 << 10},
		{"declared, over the classes: exact", strings.Repeat("x", 1<<20+1), 1<<20 + 1, 2 << 20, nil, 1<<20 + 1},
		{"empty", ``, 0, 1024, nil, 0},
		{"chunked", strings.Repeat("y", 40<<10), -1, 1 << 20, nil, 0},
		{"declared over the limit", strings.Repeat("z", 2048), 2048, 1024, errBodyTooLarge, 0},
		{"chunked over the limit", strings.Repeat("z", 2048), -1, 1024, errBodyTooLarge, 0},
	}
	var p bodyPool
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			got, err := p.readSized(rec, io.NopCloser(strings.NewReader(c.body)), c.contentLength, c.limit)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil || string(got) != c.body {
				t.Fatalf("got %d bytes, %v", len(got), err)
			}
			if c.wantCap != 0 && cap(got) != c.wantCap {
				t.Fatalf("capacity %d, want %d (presized from Content-Length)", cap(got), c.wantCap)
			}
			p.put(got)
		})
	}
}

func BenchmarkReadSized(b *testing.B) {
	body := `{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"` + strings.Repeat("x", 8000) + `"}]}`
	var p bodyPool
	rec := httptest.NewRecorder()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		got, err := p.readSized(rec, io.NopCloser(strings.NewReader(body)), int64(len(body)), 32<<20)
		if err != nil {
			b.Fatal(err)
		}
		p.put(got)
	}
}

// A forwarded body's buffer goes back to the pool only when the request
// has ended and every reader the transport got is closed, in any order;
// closing a reader twice gives back one reference.
func TestSharedBodyRecyclesAfterLastReader(t *testing.T) {
	orders := []struct {
		name  string
		steps []string // "req" = the request ends; "r0", "r1" = a reader closes
	}{
		{"request ends last", []string{"r0", "r1", "r1", "req"}},
		{"request ends first", []string{"req", "r0", "r0", "r1"}},
		{"in between", []string{"r1", "req", "r0"}},
	}
	for _, o := range orders {
		t.Run(o.name, func(t *testing.T) {
			var p bodyPool
			b := p.share(append(p.get(5), "hello"...))
			readers := map[string]io.ReadCloser{"r0": b.Open(), "r1": b.Open()}
			got, _ := io.ReadAll(readers["r0"])
			if string(got) != "hello" || b.Len() != 5 {
				t.Fatalf("read %q (len %d)", got, b.Len())
			}
			for i, step := range o.steps {
				if b.buf == nil {
					t.Fatalf("recycled before step %d (%s): a reader could still read it", i, step)
				}
				if step == "req" {
					b.release()
				} else {
					_ = readers[step].Close()
				}
			}
			if b.buf != nil {
				t.Fatal("not recycled after the request ended and every reader closed")
			}
		})
	}
}
