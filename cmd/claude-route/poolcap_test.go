package main

import (
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/server"
)

func TestCapacityText(t *testing.T) {
	f5, f7 := 0.42, 0.9
	cool := time.Date(2026, 11, 23, 12, 1, 0, 0, time.UTC)
	a := server.AccountView{AccountView: accounts.AccountView{
		Utilization: &accounts.Utilization{FiveHour: &f5, SevenDay: &f7},
		CoolingTill: &cool,
		LastProbe:   &accounts.ProbeResult{At: cool, Result: "401"},
	}}
	got := capacityText(a)
	for _, want := range []string{"5h 42%", "7d 90%", "cooling until", "last probe", "401"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if capacityText(server.AccountView{}) != "" {
		t.Error("no data, no text")
	}
}
