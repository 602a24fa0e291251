package server

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/tiers"
)

// GET /v1/usage?days=N lists the key's last N UTC days, today last, with
// the same cost /v1/usage reports; without the parameter there is no list.
func TestCustomerUsageDays(t *testing.T) {
	e := newEnv(t)
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	body := cachedBody("claude-sonnet-4-5", false, "1h")
	if r := post(t, url, "/v1/messages", key, body); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	e.srvs[0].waitBackground()
	get := func(q string) map[string]json.RawMessage {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/usage"+q, nil)
		req.Header.Set("X-Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]json.RawMessage
		if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return out
	}
	if _, ok := get("")["days"]; ok {
		t.Fatal("days listed without ?days")
	}
	var days []CustomerDay
	if err := json.Unmarshal(get("?days=7")["days"], &days); err != nil || len(days) != 7 {
		t.Fatalf("days %v %v", days, err)
	}
	today := days[6]
	ans, _ := fakeupstream.Reply([]byte(body))
	u := ans.Usage
	if today.Day != time.Now().UTC().Format(dayLayout) || today.Requests != 1 ||
		today.Tokens != int64(u.InputTokens+u.OutputTokens+u.CacheCreationInputTokens+u.CacheReadInputTokens) ||
		math.Abs(today.CostUSD-sonnetCost(t, body)) > 2e-6 || days[0].Requests != 0 {
		t.Fatalf("days %+v", days)
	}
	if err := json.Unmarshal(get("?days=500")["days"], &days); err != nil || len(days) != maxCustomerDays {
		t.Fatalf("days=500 gave %d days", len(days))
	}
}

// TestCustomerUsagePage drives GET /usage as a customer would, in a real
// browser under the page's CSP, laptop-sized and phone-sized: a wrong key is
// refused, the pasted key shows tier, expiry, windows, budgets, the chart
// and the set-up lines, and it is kept in sessionStorage only.
func TestCustomerUsagePage(t *testing.T) {
	e := newEnv(t)
	page := browserPage(t)
	trial, _ := e.tiers.Get("trial")
	trial.Budgets = &tiers.Budgets{DayUSD: 5}
	e.apiAccount("trial", "t1")
	base := e.start()
	key := e.issue("trial")
	body := cachedBody("claude-sonnet-4-5-20250929", false, "1h")
	for i := 0; i < 2; i++ {
		if r := post(t, base, "/v1/messages", key, body); r.status != http.StatusOK {
			t.Fatalf("request: %d %s", r.status, r.body)
		}
	}
	e.srvs[0].waitBackground()
	ans, _ := fakeupstream.Reply([]byte(body))
	u := ans.Usage
	wantTokens := 2 * (u.InputTokens + u.OutputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens)

	var mu sync.Mutex
	var consoleErrs []string
	page.OnConsole(func(m playwright.ConsoleMessage) {
		if m.Type() == "error" && !strings.Contains(m.Text(), "status of 401") {
			mu.Lock()
			consoleErrs = append(consoleErrs, m.Text())
			mu.Unlock()
		}
	})
	page.OnPageError(func(err error) {
		mu.Lock()
		consoleErrs = append(consoleErrs, err.Error())
		mu.Unlock()
	})
	expect := playwright.NewPlaywrightAssertions(15000)
	shots := filepath.Join(filepath.Dir(screenshotDir(t)), "usage-page")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := func(name string) {
		t.Helper()
		if _, err := page.Screenshot(playwright.PageScreenshotOptions{
			Path: playwright.String(filepath.Join(shots, name+".png")), FullPage: playwright.Bool(true),
		}); err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
	}
	must := func(step string, err error) {
		t.Helper()
		if err != nil {
			_, _ = page.Screenshot(playwright.PageScreenshotOptions{FullPage: playwright.Bool(true),
				Path: playwright.String(filepath.Join(shots, "failed-"+strings.ReplaceAll(step, " ", "-")+".png"))})
			t.Fatalf("%s: %v", step, err)
		}
	}
	id := page.GetByTestId

	// 1. A wrong key is refused with the API's own message.
	_, err := page.Goto(base + "/usage")
	must("open page", err)
	must("fill wrong key", id("key").Fill("sk-cli-v1-"+strings.Repeat("x", 32)))
	must("submit wrong key", id("show").Click())
	must("wrong key refused", expect.Locator(id("error")).ToContainText("API key"))
	must("still signing in", expect.Locator(id("view")).ToBeHidden())
	shot("01-wrong-key")

	// 2. The real key shows the key's own figures.
	must("fill key", id("key").Fill(key))
	must("submit key", id("show").Click())
	must("view shown", expect.Locator(id("view")).ToBeVisible())
	must("tier", expect.Locator(id("tier")).ToHaveText("trial"))
	must("expiry", expect.Locator(id("expiry-sub")).ToContainText(regexp.MustCompile(`expires in (23|24) h`)))
	must("window used", expect.Locator(page.Locator(`[data-testid="window-row"][data-family="sonnet"] [data-testid="window-used"]`)).ToHaveText("2/42"))
	must("tokens", expect.Locator(id("tokens")).ToHaveText(strconv.FormatInt(int64(wantTokens), 10)))
	must("day budget", expect.Locator(page.Locator(`[data-testid="budget-row"][data-window="day"] [data-testid="budget-spent"]`)).
		ToHaveText(fmt.Sprintf("$%.4f of $5.00", 2*sonnetCost(t, body))))
	must("chart days", expect.Locator(id("chart-tokens")).ToHaveAttribute("data-points", "30"))
	must("chart total", expect.Locator(id("chart-tokens")).ToHaveAttribute("data-total", strconv.Itoa(wantTokens)))
	must("cost chart", expect.Locator(id("chart-cost")).ToHaveAttribute("data-total", fmt.Sprintf("%.6f", 2*sonnetCost(t, body))))
	must("claude setup", expect.Locator(id("setup-claude")).ToContainText("export ANTHROPIC_BASE_URL="+base))
	must("openai setup", expect.Locator(id("setup-openai")).ToContainText(base+"/v1"))
	shot("02-usage-laptop")

	// The key is in this tab's sessionStorage only: not in the URL, not in
	// localStorage, not in a cookie, and not written out in the page.
	stored, err := page.Evaluate(`() => [sessionStorage.getItem('claude-route.customer-key'), localStorage.length, document.cookie, location.href]`)
	must("read storage", err)
	if got := fmt.Sprint(stored); got != fmt.Sprint([]any{key, 0, "", base + "/usage"}) {
		t.Errorf("storage [session, localStorage items, cookies, url] = %s, want the key in sessionStorage only", got)
	}
	html, err := page.Content()
	must("page content", err)
	if strings.Contains(html, key) {
		t.Error("the key is written out in the page")
	}

	// 3. Phone-sized: everything fits the width (no sideways scrolling).
	must("phone size", page.SetViewportSize(390, 844))
	must("reload", id("refresh").Click())
	must("still shown", expect.Locator(id("tier")).ToHaveText("trial"))
	width, err := page.Evaluate(`() => document.documentElement.scrollWidth`)
	must("measure", err)
	if w, _ := width.(int); w > 390 {
		t.Errorf("the page is %v px wide at 390 px: it scrolls sideways", width)
	}
	shot("03-usage-phone")

	// 4. Forgetting the key signs out and clears it.
	must("forget", id("forget").Click())
	must("signin again", expect.Locator(id("signin")).ToBeVisible())
	left, err := page.Evaluate(`() => sessionStorage.length`)
	must("read storage again", err)
	if fmt.Sprint(left) != "0" {
		t.Errorf("sessionStorage keeps %v items after forgetting the key", left)
	}
	shot("04-forgotten")

	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrs) > 0 {
		t.Errorf("the page logged errors: %q", consoleErrs)
	}
}
