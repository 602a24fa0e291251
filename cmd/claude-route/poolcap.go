package main

import (
	"fmt"
	"strings"

	"github.com/claude-route/claude-route/server"
)

// capacityText is an account's capacity in `pool`: 5-hour and 7-day
// utilization, cooling, and the last recovery probe.
func capacityText(a server.AccountView) string {
	var parts []string
	if u := a.Utilization; u != nil {
		pct := func(f *float64) string {
			if f == nil {
				return "-"
			}
			return fmt.Sprintf("%.0f%%", *f*100)
		}
		if u.FiveHour != nil || u.SevenDay != nil {
			parts = append(parts, "5h "+pct(u.FiveHour), "7d "+pct(u.SevenDay))
		} else if w := u.Windows(); len(w) > 0 {
			if v, ok := w["requests"]; ok {
				parts = append(parts, fmt.Sprintf("requests/min %.0f%%", v*100))
			}
		}
	}
	if a.CoolingTill != nil {
		parts = append(parts, "cooling until "+fmtTime(a.CoolingTill))
	}
	if p := a.LastProbe; p != nil {
		parts = append(parts, fmt.Sprintf("last probe %s: %s", fmtTime(&p.At), p.Result))
	}
	return strings.Join(parts, "  ")
}
