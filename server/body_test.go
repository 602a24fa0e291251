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
		// A declared length gets exactly its size: a forwarded body is not
		// recycled, so a pooled class would only allocate more.
		{"declared, small: exact", `{"model":"m"}`, 13, 1 << 20, nil, 13},
		{"declared, 20 KiB: exact", strings.Repeat("x", 20<<10), 20 << 10, 1 << 20, nil, 20 << 10},
		{"declared, over 1 MiB: exact", strings.Repeat("x", 1<<20+1), 1<<20 + 1, 2 << 20, nil, 1<<20 + 1},
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
