package server

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/playwright-community/playwright-go"

	"github.com/claude-route/claude-route/app"
)

// TestDashboardProbeAndLogin probes an account and adds a subscription
// account by signing in, from the dashboard's Accounts tab, in a real
// browser under the production CSP.
func TestDashboardProbeAndLogin(t *testing.T) {
	e := newEnv(t)
	page := browserPage(t)
	e.apiAccount("trial", "t1")
	e.tweaks = append(e.tweaks, func(c *app.Config) { c.Login.AuthorizeURL = e.fake.AuthorizeURL() })
	base := e.start()
	b := &opsBrowser{t: t, e: e, page: page, expect: playwright.NewPlaywrightAssertions(15000), shots: screenshotDir(t)}
	var pageErrs []string
	page.OnPageError(func(err error) { pageErrs = append(pageErrs, err.Error()) })
	_, err := page.Goto(base + "/admin/")
	b.must("open", err)
	b.must("token", b.id("login-token").Fill(adminToken))
	b.must("sign in", b.id("login-submit").Click())
	b.must("overview", b.expect.Locator(b.id("view-overview")).ToBeVisible())
	b.must("accounts tab", b.id("tab-accounts").Click())

	b.must("probe card", b.expect.Locator(b.id("probe-card")).ToBeVisible())
	b.must("probe name", b.id("probe-name").Fill("t1"))
	b.must("probe", b.id("probe-submit").Click())
	b.must("probe result", b.expect.Locator(b.id("probe-result")).ToContainText("t1: 200 OK in "))

	b.selectValue("login-tier", "high")
	b.must("login name", b.id("login-name").Fill("o7"))
	b.must("login start", b.id("login-start").Click())
	b.must("sign-in link", b.expect.Locator(b.id("login-url")).ToBeVisible())
	href, err := b.id("login-url").GetAttribute("href")
	b.must("href", err)
	resp, err := http.Get(href) // the operator signs in, in another tab
	b.must("sign-in page", err)
	pageBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`<code id="code">([^<]+)</code>`).FindSubmatch(pageBody)
	if m == nil {
		t.Fatalf("sign-in page: %s", pageBody)
	}
	b.must("wrong code", b.id("login-code").Fill("wrong#"+strings.SplitN(string(m[1]), "#", 2)[1]))
	b.must("finish", b.id("login-finish").Click())
	b.must("refused", b.expect.Locator(b.id("login-result")).ToContainText("nothing was written"))
	b.must("code", b.id("login-code").Fill(string(m[1])))
	b.must("finish", b.id("login-finish").Click())
	b.must("added", b.expect.Locator(b.id("login-result")).ToContainText("added o7 to high"))
	row := b.page.Locator(`[data-testid="account-row"][data-account="o7"]`)
	b.must("listed", b.expect.Locator(row.GetByTestId("account-state")).ToHaveText("ok"))
	_, err = page.Screenshot(playwright.PageScreenshotOptions{FullPage: playwright.Bool(true),
		Path: playwright.String(filepath.Join(b.shots, "accounts-probe-login.png"))})
	b.must("screenshot", err)
	if _, err := os.Stat(filepath.Join(e.acctDir, "high", "o7.json")); err != nil {
		t.Fatalf("account file: %v", err)
	}
	if len(pageErrs) > 0 {
		t.Errorf("page errors: %q", pageErrs)
	}
}
