package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/server"
)

// A note is the customer's or the reseller's text: in a CSV export, one
// that starts like a formula is written with a leading ', so the
// spreadsheet that opens the export shows it instead of running it.
func TestCSVExportsDefuseFormulas(t *testing.T) {
	t.Run("usage export", func(t *testing.T) {
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"rows":[{"day":"2026-12-07","key_id":"k1","tier":"high","note":"=HYPERLINK(\"http://evil\",\"x\")","requests":1,"margin_usd":-0.5}]}`)
		}))
		defer api.Close()
		env := map[string]string{"CLAUDE_ROUTE_URL": api.URL, "ADMIN_TOKEN": "op-token-0123456789"}
		var out bytes.Buffer
		if code := run(context.Background(), []string{"usage", "export", "--since", "2026-12-07", "--until", "2026-12-07", "--csv"}, envOf(env), &out, io.Discard); code != 0 {
			t.Fatalf("exit %d: %s", code, out.String())
		}
		row := strings.Split(strings.TrimSpace(out.String()), "\n")[1]
		if !strings.Contains(row, `,"'=HYPERLINK(""http://evil"",""x"")",`) || !strings.HasSuffix(row, ",-0.500000") {
			t.Fatalf("row %q: want the note behind a ' and the negative margin as a number", row)
		}
	})
	t.Run("key issue --csv", func(t *testing.T) {
		var out bytes.Buffer
		printIssued(&out, []server.IssuedKey{
			{Key: "sk-cli-v1-x", KeyView: server.KeyView{ID: "k1", Tier: "trial", Note: "@SUM(A1)"}},
			{Key: "sk-cli-v1-y", KeyView: server.KeyView{ID: "k2", Tier: "trial", Note: "+1-2"}},
		}, true, false)
		want := "id,key,tier,expires,note,first_use_validity_seconds\nk1,sk-cli-v1-x,trial,,'@SUM(A1),\nk2,sk-cli-v1-y,trial,,'+1-2,\n"
		if out.String() != want {
			t.Fatalf("got %q, want %q", out.String(), want)
		}
	})
}
