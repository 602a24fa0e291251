package server

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/playwright-community/playwright-go"
)

// The cause of the journey's flaky step 8: the Recover button clicked was
// the one drawn before the tab switch, and the refresh the switch started
// redrew the table while the click was under way. A press on the old
// button and a release on its replacement make no click, so the recover
// never happened. This test holds that refresh's answer and lets it land
// exactly between the press and the release: a refresh that brings nothing
// new must leave the rows (and the click) alone.
func TestAccountClickSurvivesRefresh(t *testing.T) {
	e := newEnv(t)
	page := browserPage(t)
	e.apiAccount("trial", "t1")
	e.apiAccount("trial", "t2")
	base := e.start()
	if st := e.admin(http.MethodPost, "/admin/api/accounts/t1/blacklist", map[string]any{"reason": "test"}, nil); st != http.StatusOK {
		t.Fatalf("blacklist: %d", st)
	}
	b := &opsBrowser{t: t, e: e, page: page, expect: playwright.NewPlaywrightAssertions(5000), shots: screenshotDir(t)}
	_, err := page.Goto(base + "/admin/")
	b.must("open", err)
	b.must("token", b.id("login-token").Fill(adminToken))
	b.must("sign in", b.id("login-submit").Click())
	b.must("accounts tab", b.id("tab-accounts").Click())
	t1 := page.Locator(`[data-testid="account-row"][data-account="t1"]`)
	b.must("t1 blacklisted", b.expect.Locator(t1.GetByTestId("account-state")).ToHaveText("blacklisted"))

	// Hold the next GET /accounts until the button is pressed.
	held := make(chan playwright.Route, 1)
	b.must("hold", page.Route(regexp.MustCompile(`/api/accounts$`), func(r playwright.Route) {
		if r.Request().Method() != http.MethodGet {
			_ = r.Continue()
			return
		}
		held <- r
	}))
	_, err = page.Evaluate(`() => { document.getElementById('updated').textContent = '' }`)
	b.must("clear updated", err)
	b.must("refresh", b.id("refresh-now").Click())
	route := <-held
	b.must("unhold", page.Unroute(regexp.MustCompile(`/api/accounts$`)))

	box, err := t1.GetByTestId("account-recover").BoundingBox()
	b.must("recover button", err)
	m := page.Mouse()
	b.must("move", m.Move(box.X+box.Width/2, box.Y+box.Height/2))
	b.must("press", m.Down())
	// The refresh lands while the button is held down.
	b.must("answer", route.Continue())
	b.must("refreshed", b.expect.Locator(b.id("updated")).ToHaveText(regexp.MustCompile(`^updated `)))
	b.must("release", m.Up())
	b.must("t1 recovered", b.expect.Locator(t1.GetByTestId("account-state")).ToHaveText("ok"))
}

// The key panel marks a budget window the key sets itself.
func TestDashboardShowsKeysOwnBudget(t *testing.T) {
	e := newEnv(t)
	page := browserPage(t)
	e.apiAccount("trial", "t1")
	base := e.start()
	var issued struct {
		Record KeyView `json:"record"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/keys", map[string]any{"tier": "trial", "note": "own budget", "budgets": map[string]any{"day_usd": 2}}, &issued); st != http.StatusCreated {
		t.Fatalf("issue: %d", st)
	}
	b := &opsBrowser{t: t, e: e, page: page, expect: playwright.NewPlaywrightAssertions(15000), shots: screenshotDir(t)}
	_, err := page.Goto(base + "/admin/")
	b.must("open", err)
	b.must("token", b.id("login-token").Fill(adminToken))
	b.must("sign in", b.id("login-submit").Click())
	b.must("keys tab", b.id("tab-keys").Click())
	row := b.id("key-row").Filter(playwright.LocatorFilterOptions{HasText: "own budget"})
	b.must("usage", row.GetByTestId("key-usage").Click())
	day := page.Locator(`[data-testid="kd-budget"][data-window="day"]`)
	b.must("day budget", b.expect.Locator(day).ToContainText("of $2.00"))
	b.must("marked own", b.expect.Locator(day.GetByTestId("kd-budget-own")).ToHaveText("key's own"))
}
