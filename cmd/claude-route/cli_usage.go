package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/claude-route/claude-route/internal/csvsafe"
	"github.com/claude-route/claude-route/server"
)

const usageCmdUsage = `  claude-route usage export --since DATE --until DATE [--tier T] [--csv|--json]
                                          one row per key per UTC day: requests, tokens, cost (USD, list prices)
`

// cmdUsage runs `usage export`: the reseller's billing input.
func cmdUsage(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	if len(args) < 2 || args[1] != "export" {
		return &usageError{"usage needs a verb: export\n" + usageCmdUsage}
	}
	fs := flag.NewFlagSet("usage export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	since := fs.String("since", "", "first day, YYYY-MM-DD (UTC)")
	until := fs.String("until", "", "last day, YYYY-MM-DD (UTC), included")
	tier := fs.String("tier", "", "only keys of this tier")
	asCSV := fs.Bool("csv", false, "write CSV")
	asJSON := fs.Bool("json", false, "write JSON")
	if err := fs.Parse(args[2:]); err != nil {
		return &usageError{"usage export: " + err.Error()}
	}
	if *since == "" || *until == "" || fs.NArg() > 0 {
		return &usageError{"usage export needs --since DATE and --until DATE (YYYY-MM-DD)"}
	}
	ac, err := newAdminClient(getenv)
	if err != nil {
		return err
	}
	q := url.Values{"since": {*since}, "until": {*until}}
	if *tier != "" {
		q.Set("tier", *tier)
	}
	path := "/admin/api/usage/export?" + q.Encode()
	if *asJSON {
		// As the server sends it, as it arrives.
		return ac.stream(ctx, path, func(r io.Reader) error {
			if _, err := io.Copy(out, r); err != nil {
				return err
			}
			_, err := fmt.Fprintln(out)
			return err
		})
	}
	// Rows are printed as they are decoded; nothing holds the export.
	eachRow := func(fn func(server.ExportRow)) error {
		return ac.stream(ctx, path, func(r io.Reader) error { return decodeRows(r, fn) })
	}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	usd := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
	if *asCSV {
		w := csvsafe.NewWriter(out)
		_ = w.Write([]string{"day", "key_id", "tier", "note", "requests", "input_tokens", "output_tokens",
			"cache_creation_input_tokens", "cache_read_input_tokens", "cost_usd", "cache_creation_1h_input_tokens", "billed_usd", "margin_usd"})
		err := eachRow(func(r server.ExportRow) {
			_ = w.Write([]string{r.Day, r.KeyID, r.Tier, r.Note, i64(r.Requests), i64(r.InputTokens), i64(r.OutputTokens),
				i64(r.CacheCreationInputTokens), i64(r.CacheReadInputTokens), usd(r.CostUSD),
				i64(r.CacheCreation1hTokens), usd(r.BilledUSD), usd(r.MarginUSD)})
		})
		w.Flush()
		if err != nil {
			return err
		}
		return w.Error()
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tKEY\tTIER\tREQUESTS\tINPUT\tOUTPUT\tCACHE WRITE\tCACHE READ\tCOST USD\tBILLED USD\tMARGIN USD")
	var total, billed float64
	f4 := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	err = eachRow(func(r server.ExportRow) {
		total += r.CostUSD
		billed += r.BilledUSD
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Day, r.KeyID, r.Tier, r.Requests, r.InputTokens,
			r.OutputTokens, r.CacheCreationInputTokens, r.CacheReadInputTokens, f4(r.CostUSD), f4(r.BilledUSD), f4(r.MarginUSD))
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(tw, "total\t\t\t\t\t\t\t\t%s\t%s\t%s\n", f4(total), f4(billed), f4(billed-total))
	return tw.Flush()
}

// decodeRows reads the export's JSON object token by token and hands each
// row to fn as it is decoded. An "error" the server wrote after the rows
// (the store failed midway) is returned: the rows before it are partial.
func decodeRows(r io.Reader, fn func(server.ExportRow)) error {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("usage export: not a JSON object (%v)", err)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("usage export: %w", err)
		}
		switch t {
		case "rows":
			if _, err := dec.Token(); err != nil { // [
				return fmt.Errorf("usage export: %w", err)
			}
			for dec.More() {
				var row server.ExportRow
				if err := dec.Decode(&row); err != nil {
					return fmt.Errorf("usage export: %w", err)
				}
				fn(row)
			}
			if _, err := dec.Token(); err != nil { // ]
				return fmt.Errorf("usage export: %w", err)
			}
		case "error":
			var e struct{ Message string }
			if err := dec.Decode(&e); err != nil {
				return fmt.Errorf("usage export: %w", err)
			}
			return fmt.Errorf("usage export stopped: %s", e.Message)
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fmt.Errorf("usage export: %w", err)
			}
		}
	}
	return nil
}
