package server

import (
	"fmt"
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
	"github.com/claude-route/claude-route/internal/testenv"
)

const chromiumPath = "/usr/bin/chromium"

// browserPage starts the playwright driver (never downloading anything) and
// Debian's Chromium, and returns a fresh laptop-sized page. Without the
// driver or the browser the test skips locally and fails in CI.
func browserPage(t *testing.T) playwright.Page {
	t.Helper()
	dir := os.Getenv("PLAYWRIGHT_DRIVER_PATH")
	if dir == "" {
		dir, _ = filepath.Abs(filepath.Join("..", ".cache", "pw-driver"))
	}
	_, errCLI := os.Stat(filepath.Join(dir, "package", "cli.js"))
	_, errChromium := os.Stat(chromiumPath)
	testenv.Require(t, errCLI == nil && errChromium == nil, "chromium and the playwright driver")

	pw, err := playwright.Run(&playwright.RunOptions{DriverDirectory: dir, SkipInstallBrowsers: true, Verbose: false})
	if err != nil {
		t.Fatalf("start playwright: %v", err)
	}
	t.Cleanup(func() { _ = pw.Stop() })
	browser, err := pw.Chromium.Launch(playwright.BrowserTypeLaunchOptions{
		ExecutablePath: playwright.String(chromiumPath),
		Headless:       playwright.Bool(true),
		// Without the networking flags Chromium keeps dialling out, which this closed network refuses.
		Args: []string{"--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run"},
	})
	if err != nil {
		t.Fatalf("launch chromium: %v", err)
	}
	t.Cleanup(func() { _ = browser.Close() })
	page, err := browser.NewPage(playwright.BrowserNewPageOptions{
		Viewport: &playwright.Size{Width: 1366, Height: 768},
		Locale:   playwright.String("en-US"),
	})
	if err != nil {
		t.Fatalf("new page: %v", err)
	}
	page.SetDefaultTimeout(15000)
	return page
}

// screenshotDir is where the step screenshots go: $TEST_OUTPUT_DIR when CI
// sets it, else the git-ignored test-output/ at the repository root, so the
// latest run's pictures are always in the same place.
func screenshotDir(t *testing.T) string {
	base := os.Getenv("TEST_OUTPUT_DIR")
	if base == "" {
		abs, err := filepath.Abs(filepath.Join("..", "test-output"))
		if err != nil {
			abs = t.TempDir()
		}
		base = abs
	}
	dir := filepath.Join(base, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot folder: %v", err)
	}
	// A failure picture from an earlier run would mislead whoever looks next.
	stale, _ := filepath.Glob(filepath.Join(dir, "failed-*.png"))
	for _, f := range stale {
		_ = os.Remove(f)
	}
	return dir
}

// TestDashboardOperatorJourney drives the dashboard the way an operator
// does, in a real browser under the production CSP, and checks each step on
// what the page shows: sign in (a wrong token first), read the pool, issue a
// key and see it once, use it through the proxy, watch its usage appear,
// revoke it, blacklist an account and recover it, and get signed out when
// the token stops being accepted.
func TestDashboardOperatorJourney(t *testing.T) {
	e := newEnv(t, withQuickWatch()) // skips (or fails in CI) without Redis before starting a browser
	page := browserPage(t)
	e.apiAccount("trial", "t1")
	e.apiAccount("trial", "t2")
	e.oauthAccount("high", "h1", time.Now().Add(8*time.Hour))
	base := e.start()

	// Anything the page logs as an error — a CSP violation, a failed asset,
	// an exception — is a defect the operator would see as a broken page.
	var mu sync.Mutex
	var consoleErrs []string
	page.OnConsole(func(m playwright.ConsoleMessage) {
		// The refused logins of steps 1 and 9 are expected 401s.
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
	shots := screenshotDir(t)
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
			// Best effort: the picture helps, but the step's error is the report.
			_, _ = page.Screenshot(playwright.PageScreenshotOptions{FullPage: playwright.Bool(true),
				Path: playwright.String(filepath.Join(shots, "failed-"+strings.ReplaceAll(step, " ", "-")+".png"))})
			logs := e.logs.String()
			if len(logs) > 4000 {
				logs = logs[len(logs)-4000:]
			}
			t.Logf("server log tail:\n%s", logs)
			t.Fatalf("%s: %v", step, err)
		}
	}
	id := page.GetByTestId
	row := func(kind, attr, value string) playwright.Locator {
		return page.Locator(`[data-testid="` + kind + `"][` + attr + `="` + value + `"]`)
	}

	// 1. Sign in: a wrong token is refused on the login screen.
	_, err := page.Goto(base + "/admin/")
	must("open dashboard", err)
	must("fill wrong token", id("login-token").Fill("not-the-admin-token"))
	must("submit wrong token", id("login-submit").Click())
	must("wrong token refused", expect.Locator(id("login-error")).ToContainText("not accepted"))
	must("still on login", expect.Locator(id("view-overview")).ToBeHidden())
	shot("01-login-wrong-token")

	must("fill token", id("login-token").Fill(adminToken))
	must("submit token", id("login-submit").Click())
	must("overview shown", expect.Locator(id("view-overview")).ToBeVisible())
	must("updated time shown", expect.Locator(id("updated")).ToHaveText(regexp.MustCompile(`^updated \d\d:\d\d:\d\d$`)))

	// The token is kept for the tab only: not in localStorage, not in a cookie.
	stored, err := page.Evaluate(`() => [sessionStorage.getItem('claude-route.admin-token'), localStorage.length, document.cookie]`)
	must("read storage", err)
	if got := fmt.Sprint(stored); got != fmt.Sprint([]any{adminToken, 0, ""}) {
		t.Errorf("token storage [session, localStorage items, cookies] = %s, want it in sessionStorage only", got)
	}

	// 2. The overview shows the pool: three accounts, every slot free.
	must("account count", expect.Locator(id("ov-accounts")).ToHaveText("3"))
	must("trial slots", expect.Locator(row("tier-row", "data-tier", "trial").GetByTestId("tier-slots")).ToHaveText("0/14"))
	must("high slots", expect.Locator(row("tier-row", "data-tier", "high").GetByTestId("tier-slots")).ToHaveText("0/3"))
	must("nothing blacklisted", expect.Locator(id("ov-blacklisted")).ToContainText("every account is in service"))
	must("h1 refresh listed", expect.Locator(id("ov-refreshes")).ToContainText("h1"))
	must("no requests yet", expect.Locator(id("ov-requests")).ToHaveText("0"))
	must("all slots free", expect.Locator(id("ov-slots")).ToHaveText("0/17"))
	must("last sync shown", expect.Locator(id("ov-sync")).Not().ToContainText(regexp.MustCompile(`No sync recorded|null|undefined`)))
	must("store ok", expect.Locator(id("store-ok")).ToBeVisible())
	shot("02-overview")

	// 3. Issue a trial key on the Keys tab; the key is shown once.
	must("keys tab", id("tab-keys").Click())
	must("keys view", expect.Locator(id("view-keys")).ToBeVisible())
	_, err = id("issue-tier").SelectOption(playwright.SelectOptionValues{Values: &[]string{"trial"}})
	must("choose tier", err)
	// A note unique to this run finds the key's row; it also carries markup
	// that must be shown as text.
	note := "dashboard journey " + strconv.FormatInt(time.Now().UnixNano(), 36) + " <b>customer</b>"
	must("fill note", id("issue-note").Fill(note))
	must("issue", id("issue-submit").Click())
	must("new key shown", expect.Locator(id("new-key-value")).ToHaveText(regexp.MustCompile(`^sk-cli-v1-\S+$`)))
	key, err := id("new-key-value").TextContent()
	must("read key", err)
	keyRow := id("key-row").Filter(playwright.LocatorFilterOptions{HasText: note})
	must("key listed", expect.Locator(keyRow).ToHaveCount(1))
	must("key active", expect.Locator(keyRow.GetByTestId("key-status")).ToHaveText("active"))
	// The note is shown as text, not interpreted as markup.
	must("note escaped", expect.Locator(keyRow.Locator(".note")).ToHaveText(note))
	must("copy", id("copy-key").Click())
	must("copy feedback", expect.Locator(id("copy-key")).Not().ToHaveText("Copy"))
	shot("03-key-issued")

	// Stock issued in bulk after it: the key stays first (oldest first).
	var stock struct{ Keys []IssuedKey }
	if st := e.admin(http.MethodPost, "/admin/api/keys/batch", map[string]any{"tier": "trial", "count": 120, "note": "stock"}, &stock); st != http.StatusCreated {
		t.Fatalf("bulk issue: %d", st)
	}

	// Search narrows the list on the server side and says when nothing matches.
	must("search nothing", id("keys-search").Fill("no-such-key-anywhere"))
	must("empty message", expect.Locator(page.Locator("#keys-empty")).ToBeVisible())
	must("row filtered out", expect.Locator(keyRow).ToHaveCount(0))
	must("search by note", id("keys-search").Fill(strings.Fields(note)[2]))
	must("row found", expect.Locator(keyRow).ToHaveCount(1))
	must("clear search", id("keys-search").Fill(""))
	keyID := keyIDOf(key)
	must("search by id", id("keys-search").Fill(keyID[2:9]))
	must("row found by id", expect.Locator(id("key-row")).ToHaveCount(1))
	must("found row is the key", expect.Locator(id("key-row").GetByTestId("key-id")).ToHaveText(keyID))
	must("clear search again", id("keys-search").Fill(""))

	// The list comes 100 keys a page (issue 27): the stock issued above
	// pushes past the first page (once the cleared search is applied);
	// the pager walks forward and back.
	must("first page full", expect.Locator(id("key-row")).ToHaveCount(100))
	must("journey key on the first page", expect.Locator(keyRow).ToHaveCount(1))
	must("no previous page", expect.Locator(id("keys-prev")).ToBeDisabled())
	must("next page", id("keys-next").Click())
	must("page 2 shown", expect.Locator(id("keys-page")).ToContainText("page 2"))
	must("journey key not on page 2", expect.Locator(keyRow).ToHaveCount(0))
	must("last page", expect.Locator(id("keys-next")).ToBeDisabled())
	shot("03b-keys-page-2")
	must("previous page", id("keys-prev").Click())
	must("back on page 1", expect.Locator(keyRow).ToHaveCount(1))

	must("dismiss key", id("dismiss-key").Click())
	must("key hidden", expect.Locator(id("new-key")).ToBeHidden())
	html, err := page.Content()
	must("page content", err)
	if strings.Contains(html, key) {
		t.Errorf("the issued key is still in the page after it was dismissed")
	}

	// 4. Use the key for a real request through the proxy.
	body := msgBody("claude-sonnet-4-5-20250929", false)
	if r := post(t, base, "/v1/messages", key, body); r.status != http.StatusOK {
		t.Fatalf("request with the issued key: %d %s", r.status, r.body)
	}
	ans, err := fakeupstream.Reply([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	u := ans.Usage
	wantTokens := u.InputTokens + u.OutputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	if wantTokens >= 1000 {
		t.Fatalf("the assertion below assumes no thousands separator; tokens = %d", wantTokens)
	}

	// 5. Its usage appears in the per-key view.
	must("open usage", keyRow.GetByTestId("key-usage").Click())
	must("detail shown", expect.Locator(id("key-detail")).ToBeVisible())
	must("requests counted", expect.Locator(id("kd-requests")).ToHaveText("1"))
	must("tokens counted", expect.Locator(id("kd-tokens")).ToHaveText(strconv.Itoa(wantTokens)))
	must("cost shown", expect.Locator(id("kd-cost")).ToHaveText(dashboardCost(e.tiers, "sonnet", u)))
	must("quota used", expect.Locator(row("kd-quota", "data-family", "sonnet")).ToContainText("1/42"))
	must("bound account shown", expect.Locator(keyRow).ToContainText(regexp.MustCompile(`t[12]`)))
	shot("04-key-usage")

	// 6. Revoke it: the list says revoked and the proxy refuses the key.
	must("revoke", keyRow.GetByTestId("key-revoke").Click())
	must("confirm dialog", expect.Locator(id("confirm")).ToBeVisible())
	must("confirm revoke", id("confirm-ok").Click())
	must("key revoked", expect.Locator(keyRow.GetByTestId("key-status")).ToHaveText("revoked"))
	must("no revoke button", expect.Locator(keyRow.GetByTestId("key-revoke")).ToHaveCount(0))
	if r := post(t, base, "/v1/messages", key, body); r.status != http.StatusUnauthorized {
		t.Errorf("revoked key still accepted: %d", r.status)
	}
	shot("05-key-revoked")

	// 7. Blacklist an account from the Accounts tab, with a reason.
	must("accounts tab", id("tab-accounts").Click())
	t1 := row("account-row", "data-account", "t1")
	must("t1 ok", expect.Locator(t1.GetByTestId("account-state")).ToHaveText("ok"))
	must("blacklist", t1.GetByTestId("account-blacklist").Click())
	must("reason", id("confirm-reason").Fill("suspicious traffic"))
	must("confirm blacklist", id("confirm-ok").Click())
	must("t1 blacklisted", expect.Locator(t1.GetByTestId("account-state")).ToHaveText("blacklisted"))
	must("reason shown", expect.Locator(t1.GetByTestId("account-reason")).ToHaveText("suspicious traffic"))
	must("t2 untouched", expect.Locator(row("account-row", "data-account", "t2").GetByTestId("account-state")).ToHaveText("ok"))
	shot("06-account-blacklisted")

	// The overview agrees: t1 listed as blacklisted, its slots out of the total.
	must("overview tab", id("tab-overview").Click())
	must("blacklist on overview", expect.Locator(row("ov-blacklisted-item", "data-account", "t1")).ToContainText("suspicious traffic"))
	must("trial slots shrink", expect.Locator(row("tier-row", "data-tier", "trial").GetByTestId("tier-slots")).ToHaveText("0/7"))
	must("request counted overall", expect.Locator(id("ov-requests")).ToHaveText("1"))
	// The pool watcher turned the blacklisting into an alert.
	must("alert listed", expect.Locator(row("alert-item", "data-event", "account_blacklisted")).ToContainText("t1"))
	must("alert says why", expect.Locator(row("alert-item", "data-event", "account_blacklisted")).ToContainText("suspicious traffic"))
	shot("07-overview-blacklisted")

	// 8. Recover it.
	must("accounts tab again", id("tab-accounts").Click())
	must("recover", t1.GetByTestId("account-recover").Click())
	must("t1 ok again", expect.Locator(t1.GetByTestId("account-state")).ToHaveText("ok"))
	must("reason gone", expect.Locator(t1.GetByTestId("account-reason")).ToHaveCount(0))
	shot("08-account-recovered")

	// 9. A token that stops being accepted (rotated on the server) sends the
	// operator back to the login screen with a message.
	_, err = page.Evaluate(`() => sessionStorage.setItem('claude-route.admin-token', 'rotated-away')`)
	must("swap token", err)
	must("refresh", id("refresh-now").Click())
	must("back to login", expect.Locator(id("login")).ToBeVisible())
	must("signed-out message", expect.Locator(id("login-error")).ToContainText("Signed out"))
	shot("09-signed-out")

	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrs) > 0 {
		t.Errorf("the page logged errors: %q", consoleErrs)
	}
}
