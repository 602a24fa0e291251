package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/usage"
)

// thousands formats n as the page's en-US Intl.NumberFormat does.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// TestDashboardPictures checks the pictures in a real browser under the
// production CSP: the 24-hour charts (overall and of one key) have one
// point per 5-minute bucket, the maximum and the time labels of the
// series the admin API returns; the utilization meters and the tier
// capacity bars carry the values in the store.
func TestDashboardPictures(t *testing.T) {
	// A fixed clock makes the buckets, hence the labels, known in advance.
	now := time.Date(2026, 12, 2, 10, 2, 30, 0, time.UTC)
	e := newEnv(t, withClock(clock.NewFake(now)))
	page := browserPage(t)
	e.apiAccount("trial", "t1")
	e.apiAccount("trial", "t2")
	e.apiAccount("high", "h1")
	base := e.start()

	key := e.issue("trial", "t1")
	other := e.issue("trial", "t2")
	for _, k := range []string{key, key, other} {
		if r := post(t, base, "/v1/messages", k, msgBody("claude-sonnet-4-5", false)); r.status != 200 {
			t.Fatalf("request: %d %s", r.status, r.body)
		}
	}
	f5, f7 := 0.42, 0.17
	e.apps[0].Util.Observe("h1", accounts.Utilization{FiveHour: &f5, SevenDay: &f7, ObservedAt: now})
	if err := e.apps[0].Util.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.srvs[0].waitBackground()

	type series struct {
		Key           string        `json:"key"`
		BucketSeconds int           `json:"bucket_seconds"`
		Points        []usage.Point `json:"points"`
	}
	var all, one series
	if st := e.admin(http.MethodGet, "/admin/api/usage/series", nil, &all); st != 200 || len(all.Points) != 288 || all.BucketSeconds != 300 {
		t.Fatalf("series: %d, %d points, %d s", st, len(all.Points), all.BucketSeconds)
	}
	kid := keyIDOf(key)
	if st := e.admin(http.MethodGet, "/admin/api/usage/series?key="+kid, nil, &one); st != 200 || one.Key != kid || len(one.Points) != 288 {
		t.Fatalf("key series: %d %+v", st, one.Key)
	}
	maxOf := func(s series, f func(usage.Point) int64) (m int64) {
		for _, p := range s.Points {
			m = max(m, f(p))
		}
		return m
	}
	reqs := func(p usage.Point) int64 { return p.Requests }
	toks := func(p usage.Point) int64 { return p.Tokens }
	if maxOf(all, reqs) != 3 || maxOf(one, reqs) != 2 || all.Points[287].Requests != 3 {
		t.Fatalf("series maxima: all %d, key %d", maxOf(all, reqs), maxOf(one, reqs))
	}

	expect := playwright.NewPlaywrightAssertions(15000)
	must := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	id := page.GetByTestId
	var pageErrs []string
	page.OnPageError(func(err error) { pageErrs = append(pageErrs, err.Error()) })
	page.OnConsole(func(m playwright.ConsoleMessage) {
		if m.Type() == "error" {
			pageErrs = append(pageErrs, m.Text())
		}
	})
	_, err := page.Goto(base + "/admin/")
	must("open", err)
	must("token", id("login-token").Fill(adminToken))
	must("sign in", id("login-submit").Click())

	// The first bucket is 23 h 55 min before the current one (10:00 UTC).
	wantX := []string{"10:05", "16:05", "22:05", "04:05", "now"}
	checkChart := func(testid string, wantMax int64) {
		t.Helper()
		c := id(testid)
		must(testid+" drawn", expect.Locator(c).ToHaveAttribute("data-points", "288"))
		must(testid+" max", expect.Locator(c).ToHaveAttribute("data-max", strconv.FormatInt(wantMax, 10)))
		pts, err := c.GetByTestId(testid + "-line").GetAttribute("points")
		must(testid+" line", err)
		if n := len(strings.Fields(pts)); n != 288 {
			t.Fatalf("%s: %d points on the line, want 288", testid, n)
		}
		must(testid+" x labels", expect.Locator(c.GetByTestId("chart-label-x")).ToHaveText(wantX))
		must(testid+" y labels", expect.Locator(c.GetByTestId("chart-label-y")).ToHaveText([]string{thousands(wantMax), "0"}))
	}
	checkChart("ov-chart-requests", 3)
	checkChart("ov-chart-tokens", maxOf(all, toks))

	// The tier capacity bars: trial 2 of 14 slots, high 0 of 3.
	trialBar := page.Locator(`[data-testid="tier-row"][data-tier="trial"] [data-testid="tier-bar"]`)
	must("trial bar used", expect.Locator(trialBar).ToHaveAttribute("aria-valuenow", "2"))
	must("trial bar total", expect.Locator(trialBar).ToHaveAttribute("aria-valuemax", "14"))
	highBar := page.Locator(`[data-testid="tier-row"][data-tier="high"] [data-testid="tier-bar"]`)
	must("high bar", expect.Locator(highBar).ToHaveAttribute("aria-valuemax", "3"))
	must("high bar used", expect.Locator(highBar).ToHaveAttribute("aria-valuenow", "0"))

	// A key's own chart, in its usage panel.
	must("keys tab", id("tab-keys").Click())
	must("open key", page.Locator(`[data-testid="key-row"][data-key-id="`+kid+`"] [data-testid="key-usage"]`).Click())
	checkChart("kd-chart-requests", 2)
	checkChart("kd-chart-tokens", maxOf(one, toks))

	// Utilization meters per account: h1 reported 42 % (5 h) and 17 % (7 d).
	must("accounts tab", id("tab-accounts").Click())
	h1 := page.Locator(`[data-testid="account-row"][data-account="h1"]`)
	must("5 h meter", expect.Locator(h1.GetByTestId("util-5h")).ToHaveAttribute("aria-valuenow", "42"))
	must("7 d meter", expect.Locator(h1.GetByTestId("util-7d")).ToHaveAttribute("aria-valuenow", "17"))
	must("5 h text", expect.Locator(h1).ToContainText("5 h 42%"))
	t1 := page.Locator(`[data-testid="account-row"][data-account="t1"]`)
	must("no utilization reported for t1", expect.Locator(t1.GetByTestId("util-5h")).ToHaveCount(0))
	if _, err := page.Screenshot(playwright.PageScreenshotOptions{FullPage: playwright.Bool(true),
		Path: playwright.String(screenshotDir(t) + "/10-pictures-accounts.png")}); err != nil {
		t.Logf("screenshot: %v", err)
	}
	if len(pageErrs) > 0 {
		t.Fatalf("the page logged errors: %q", pageErrs)
	}
}
