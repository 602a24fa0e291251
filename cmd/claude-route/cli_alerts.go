package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/claude-route/claude-route/alerts"
)

// cmdAlerts runs `alerts` (the last events) and `alerts test`.
func cmdAlerts(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("alerts", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "write JSON")
	if err := fs.Parse(reorder(args[1:])); err != nil {
		return &usageError{"alerts: " + err.Error()}
	}
	ac, err := newAdminClient(getenv)
	if err != nil {
		return err
	}
	switch {
	case fs.NArg() == 1 && fs.Arg(0) == "test":
		if err := ac.do(ctx, http.MethodPost, "/admin/api/alerts/test", nil, nil); err != nil {
			return err
		}
		_, err := fmt.Fprintln(out, "test alert sent to ALERT_WEBHOOK_URL")
		return err
	case fs.NArg() > 0:
		return &usageError{"alerts takes no argument but test"}
	}
	var res struct {
		Alerts  []alerts.Event `json:"alerts"`
		Webhook bool           `json:"webhook"`
	}
	if err := ac.do(ctx, http.MethodGet, "/admin/api/alerts", nil, &res); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	if !res.Webhook {
		fmt.Fprintln(out, "(no ALERT_WEBHOOK_URL: alerts are kept here only)")
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tEVENT\tSUBJECT\tTEXT")
	for _, e := range res.Alerts {
		subj := e.Account
		if subj == "" {
			subj = e.Tier
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Event, dash(subj), e.Text)
	}
	return tw.Flush()
}
