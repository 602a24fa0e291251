package main

import (
	"strings"
	"testing"

	"github.com/claude-route/claude-route/server"
)

// The export is read row by row as it arrives; an error the server wrote
// after some rows (the store failed midway) is not taken for a whole export.
func TestDecodeRowsStreamsAndSeesALateError(t *testing.T) {
	whole := `{"since":"2026-12-01","until":"2026-12-02","rows":[{"day":"2026-12-01","key_id":"k_1","requests":2},
{"day":"2026-12-02","key_id":"k_1","requests":3}]}`
	var got []server.ExportRow
	if err := decodeRows(strings.NewReader(whole), func(r server.ExportRow) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Requests != 3 || got[0].Day != "2026-12-01" {
		t.Fatalf("rows = %+v", got)
	}
	cut := `{"since":"2026-12-01","until":"2026-12-02","rows":[{"day":"2026-12-01","key_id":"k_1","requests":2}
],"error":{"type":"api_error","message":"store unavailable after 1 rows"}}`
	got = nil
	err := decodeRows(strings.NewReader(cut), func(r server.ExportRow) { got = append(got, r) })
	if err == nil || !strings.Contains(err.Error(), "store unavailable") || len(got) != 1 {
		t.Fatalf("cut export: %v, %d rows", err, len(got))
	}
}
