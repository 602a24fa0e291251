package server

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/playwright-community/playwright-go"
)

// opsBrowser is the browser test's handle for the lifecycle steps: each
// step is its own method so that other journeys can call them.
type opsBrowser struct {
	t      *testing.T
	e      *env
	page   playwright.Page
	expect playwright.PlaywrightAssertions
	shots  string
}

func (b *opsBrowser) must(step string, err error) {
	b.t.Helper()
	if err != nil {
		_, _ = b.page.Screenshot(playwright.PageScreenshotOptions{FullPage: playwright.Bool(true),
			Path: playwright.String(filepath.Join(b.shots, "failed-ops-"+strings.ReplaceAll(step, " ", "-")+".png"))})
		b.t.Fatalf("%s: %v", step, err)
	}
}

func (b *opsBrowser) id(s string) playwright.Locator { return b.page.GetByTestId(s) }

func (b *opsBrowser) selectValue(testid, v string) {
	b.t.Helper()
	_, err := b.id(testid).SelectOption(playwright.SelectOptionValues{Values: &[]string{v}})
	b.must("select "+testid+"="+v, err)
}

// addAccountStep pastes an API-key account file on the Accounts tab; the
// secret is not shown back and the account appears in the table.
func (b *opsBrowser) addAccountStep(tier, name, secret string) {
	b.t.Helper()
	b.must("accounts tab", b.id("tab-accounts").Click())
	b.must("add card", b.expect.Locator(b.id("ops-acct-add-card")).ToBeVisible())
	b.selectValue("ops-acct-tier", tier)
	b.must("name", b.id("ops-acct-name").Fill(name))
	b.must("json", b.id("ops-acct-json").Fill(`{"apiKey":"`+secret+`"}`))
	b.must("add", b.id("ops-acct-add").Click())
	b.must("added", b.expect.Locator(b.id("ops-acct-add-result")).ToContainText("added "+name+" to "+tier))
	b.must("fingerprint shown", b.expect.Locator(b.id("ops-acct-add-result")).ToContainText("sha256:"))
	row := b.page.Locator(`[data-testid="account-row"][data-account="` + name + `"]`)
	b.must("listed", b.expect.Locator(row.GetByTestId("account-state")).ToHaveText("ok"))
	html, err := b.page.Content()
	b.must("content", err)
	if strings.Contains(html, secret) {
		b.t.Errorf("the pasted secret is still in the page")
	}
}

// accountActionStep applies disable/enable/probe/delete to an account
// with the button on its own row (disable and delete ask first).
func (b *opsBrowser) accountActionStep(name, action, wantState string) {
	b.t.Helper()
	b.must("accounts tab", b.id("tab-accounts").Click())
	row := b.page.Locator(`[data-testid="account-row"][data-account="` + name + `"]`)
	b.must(action, row.GetByTestId("account-"+action).Click())
	if action == "disable" || action == "delete" {
		b.must(action+" confirm", b.id("confirm-ok").Click())
	}
	b.must(action+" done", b.expect.Locator(b.id("acct-result")).ToContainText(name+": "))
	b.must(action+" state", b.expect.Locator(row.GetByTestId("account-state")).ToHaveText(wantState))
}

// keyActionStep applies a key verb from the Keys tab and checks the row.
func (b *opsBrowser) keyActionStep(id, action, value, wantInResult string) {
	b.t.Helper()
	b.must("keys tab", b.id("tab-keys").Click())
	b.must("key ref", b.id("ops-key-ref").Fill(id))
	b.selectValue("ops-key-action", action)
	b.must("value", b.id("ops-key-arg").Fill(value))
	b.must(action, b.id("ops-key-submit").Click())
	b.must(action+" result", b.expect.Locator(b.id("ops-key-result")).ToContainText(wantInResult))
}

// TestDashboardLifecycle adds an account, disables it, extends a key and
// moves a key to another tier, all from the dashboard, and checks the
// server's state after each.
func TestDashboardLifecycle(t *testing.T) {
	e := newEnv(t)
	page := browserPage(t)
	e.apiAccount("trial", "t1")
	e.apiAccount("high", "h1")
	base := e.start()
	secret := "sk-ant-api03-dashboard-pasted"
	e.fake.AddAPIKey(secret)

	b := &opsBrowser{t: t, e: e, page: page, expect: playwright.NewPlaywrightAssertions(15000), shots: screenshotDir(t)}
	var pageErrs []string
	page.OnPageError(func(err error) { pageErrs = append(pageErrs, err.Error()) })
	_, err := page.Goto(base + "/admin/")
	b.must("open", err)
	b.must("token", b.id("login-token").Fill(adminToken))
	b.must("sign in", b.id("login-submit").Click())
	b.must("overview", b.expect.Locator(b.id("view-overview")).ToBeVisible())

	b.addAccountStep("trial", "t9", secret)
	b.accountActionStep("t9", "disable", "blacklisted")
	if v := accountByName(e.accountViews(), "t9"); v == nil || v.Blacklist == nil || v.Blacklist.Reason != "disabled" {
		t.Fatalf("t9 after disable: %+v", v)
	}
	b.accountActionStep("t9", "enable", "ok")
	b.accountActionStep("t1", "probe", "ok")
	b.must("probe result", b.expect.Locator(b.id("acct-result")).ToContainText("t1: probe answered 200"))

	// Phone-sized, every tab fits the width: wide tables scroll inside
	// their cards, the page never scrolls sideways.
	b.must("phone size", page.SetViewportSize(390, 844))
	for _, tab := range []string{"overview", "keys", "accounts"} {
		b.must(tab+" tab", b.id("tab-"+tab).Click())
		b.must(tab+" shown", b.expect.Locator(b.id("view-"+tab)).ToBeVisible())
		w, err := page.Evaluate(`() => document.documentElement.scrollWidth`)
		b.must("measure "+tab, err)
		if n, _ := w.(int); n > 390 {
			t.Errorf("%s at 390 px is %v px wide: the page scrolls sideways", tab, w)
		}
		if _, err := page.Screenshot(playwright.PageScreenshotOptions{FullPage: playwright.Bool(true),
			Path: playwright.String(filepath.Join(b.shots, "phone-"+tab+".png"))}); err != nil {
			t.Fatal(err)
		}
	}
	b.must("laptop size", page.SetViewportSize(1366, 768))

	key := e.issue("trial", "t1")
	id := keyIDOf(key)
	before := e.keyView(id)
	b.keyActionStep(id, "extend", "7", id+": tier trial")
	if got := e.keyView(id); !got.ExpiresAt.Equal(before.ExpiresAt.Add(7 * 24 * time.Hour)) {
		t.Fatalf("extended to %v, want %v", got.ExpiresAt, before.ExpiresAt.Add(7*24*time.Hour))
	}
	b.keyActionStep(id, "move", "high", "tier high")
	if got := e.keyView(id); got.Tier != "high" || got.Account != "h1" {
		t.Fatalf("after move: %+v", got)
	}
	if r := post(t, base, "/v1/messages", key, msgBody("claude-opus-4-1", false)); r.status != http.StatusOK {
		t.Fatalf("moved key: %d", r.status)
	}
	// A refused move says why.
	b.keyActionStep(id, "move", "gold", "unknown tier")
	if len(pageErrs) > 0 {
		t.Errorf("page errors: %q", pageErrs)
	}
}
