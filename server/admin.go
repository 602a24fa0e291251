package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/refresh"
	"github.com/claude-route/claude-route/syncer"
	"github.com/claude-route/claude-route/usage"
)

func (s *Server) adminRoutes(e *gin.Engine) {
	a := e.Group("/admin/api", s.adminAuth, s.forgetAfterChange, accountNameRule)
	a.GET("/keys", s.adminListKeys)
	a.POST("/keys", s.adminIssueKey)
	a.GET("/keys/:ref", s.adminShowKey)
	a.DELETE("/keys/:ref", s.adminRevokeKey)
	a.POST("/keys/:ref/revoke", s.adminRevokeKey)
	a.GET("/pool", s.adminPool)
	a.GET("/accounts", s.adminAccounts)
	a.POST("/accounts/:name/recover", s.adminRecover)
	a.POST("/accounts/:name/blacklist", s.adminBlacklist)
	a.POST("/sync", s.adminSync)
	a.GET("/status", s.adminStatus)
	a.GET("/usage", s.adminUsage)
	a.GET("/usage/export", s.adminUsageExport)
	s.opsRoutes(a)
	s.alertRoutes(a)
	a.GET("/usage/series", s.adminUsageSeries)
	s.dashboardRoutes(e)
}

// forgetAfterChange drops what this replica has cached once an operator's
// change (revoke, extend, recover, blacklist, sync…) is done, so that it
// takes effect here at once. A change to an existing key (revoke, extend,
// renew, move, rebind) must hold on every replica when the operator hears
// back (a revoked key is refused everywhere at once): its answer waits
// until every replica's cached copy of the key, read before the change,
// has expired (package cache counts an entry's life from its read).
func (s *Server) forgetAfterChange(c *gin.Context) {
	m := c.Request.Method
	if m == http.MethodGet || m == http.MethodHead {
		c.Next()
		return
	}
	if ttl := s.gate.KeyCacheTTL(); ttl > 0 && strings.HasPrefix(c.FullPath(), "/admin/api/keys/:ref") {
		w := &settlingWriter{ResponseWriter: c.Writer, settle: func() {
			// The change was written before its answer: TTL from now,
			// every copy read before it has expired.
			s.forget()
			t := time.NewTimer(ttl)
			defer t.Stop()
			select {
			case <-t.C:
			case <-c.Request.Context().Done():
			}
		}}
		c.Writer = w
		defer func() { c.Writer = w.ResponseWriter }()
	}
	c.Next()
	s.forget()
}

// settlingWriter runs settle once before the answer's first byte.
type settlingWriter struct {
	gin.ResponseWriter
	settle func()
	once   sync.Once
}

func (w *settlingWriter) WriteHeader(code int) {
	w.once.Do(w.settle)
	w.ResponseWriter.WriteHeader(code)
}

func (w *settlingWriter) WriteHeaderNow() {
	w.once.Do(w.settle)
	w.ResponseWriter.WriteHeaderNow()
}

func (w *settlingWriter) Write(b []byte) (int, error) {
	w.once.Do(w.settle)
	return w.ResponseWriter.Write(b)
}

func (w *settlingWriter) WriteString(str string) (int, error) {
	w.once.Do(w.settle)
	return w.ResponseWriter.WriteString(str)
}

// forget empties both caches (package cache).
func (s *Server) forget() {
	s.gate.ForgetAll()
}

// adminAuth admits the operator's bearer token, compared in constant time
// (on digests, so the length does not leak either). Without a configured
// token the admin API is closed to everyone.
func (s *Server) adminAuth(c *gin.Context) {
	if s.cfg.AdminToken == "" {
		writeError(c.Writer, http.StatusForbidden, errPermission, "The admin API is disabled: set ADMIN_TOKEN to enable it")
		c.Abort()
		return
	}
	got := c.GetHeader("Authorization")
	if len(got) > 7 && strings.EqualFold(got[:7], "bearer ") {
		got = strings.TrimSpace(got[7:])
	} else {
		got = ""
	}
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	have := sha256.Sum256([]byte(got))
	if got == "" || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
		writeError(c.Writer, http.StatusUnauthorized, errAuthentication, "Invalid admin token")
		c.Abort()
		return
	}
	c.Next()
}

// KeyView is a key as the admin API shows it: never the key itself.
type KeyView struct {
	ID        string     `json:"id"`
	Prefix    string     `json:"prefix"`
	Tier      string     `json:"tier"`
	Status    string     `json:"status"`
	Note      string     `json:"note"`
	Account   string     `json:"account"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	// NotActivated marks a key whose validity starts at its first
	// successful request (ExpiresAt is null until then); FirstUseValidity
	// is that validity.
	NotActivated            bool  `json:"not_activated,omitempty"`
	FirstUseValiditySeconds int64 `json:"first_use_validity_seconds,omitempty"`
	// Budgets are the key's own budgets (absent: the tier's).
	Budgets *BudgetsIn `json:"budgets,omitempty"`
}

func (s *Server) viewKey(r keys.Record, bound map[string]string) KeyView {
	v := KeyView{ID: r.ID, Prefix: r.Prefix, Tier: r.Tier, Status: r.Status, Note: r.Note,
		Account: r.Account, CreatedAt: r.Created.UTC(), Budgets: ownBudgets(r.Budgets)}
	if a, ok := bound[r.Hash]; ok {
		v.Account = a
	}
	if r.NotActivated() {
		v.NotActivated, v.FirstUseValiditySeconds = true, int64(r.FirstUse/time.Second)
	}
	if !r.Expires.IsZero() {
		e := r.Expires.UTC()
		v.ExpiresAt = &e
		if r.Status == "active" && !r.Expires.After(s.d.Clock.Now()) {
			v.Status = "expired"
		}
	}
	return v
}

func adminErr(c *gin.Context, status int, msg string) {
	typ := errInvalidRequest
	switch status {
	case http.StatusNotFound:
		typ = errNotFound
	case http.StatusServiceUnavailable:
		typ = errAPI
	case http.StatusConflict:
		typ = errOverloaded
	}
	writeError(c.Writer, status, typ, msg)
}

func (s *Server) bindings(ctx context.Context) map[string]string {
	m, err := s.d.Pool.Bindings(ctx)
	if err != nil {
		return nil // views fall back to the ledger's account
	}
	return m
}

func (s *Server) adminIssueKey(c *gin.Context) {
	ctx := c.Request.Context()
	var in struct {
		Tier    string `json:"tier"`
		Account string `json:"account"`
		Note    string `json:"note"`
		// FromFirstUse starts the validity at the first request; absent:
		// the tier's validity_from.
		FromFirstUse *bool `json:"from_first_use"`
		// Strict refuses a key the tier has no free slot for (see
		// sellingWarning) instead of issuing it with a warning.
		Strict bool `json:"strict"`
		// Budgets are the key's own (absent: the tier's).
		Budgets *BudgetsIn `json:"budgets"`
	}
	if err := c.ShouldBindJSON(&in); err != nil {
		adminErr(c, http.StatusBadRequest, "body must be JSON {tier, account?, note?, from_first_use?, budgets?}")
		return
	}
	if !checkBudgetsIn(c, in.Budgets) {
		return
	}
	tier, ok := s.d.Tiers.Get(in.Tier)
	if !ok {
		adminErr(c, http.StatusBadRequest, "unknown tier "+strqt(in.Tier)+"; tiers: "+strings.Join(s.d.Tiers.Names(), ", "))
		return
	}
	if len(in.Note) > 500 {
		adminErr(c, http.StatusBadRequest, "note is longer than 500 characters")
		return
	}
	if in.Account != "" {
		// Refuse up front what the binding would refuse, so no key is issued in vain.
		view, err := s.d.Pool.View(ctx, []string{tier.Name}, s.slotsOf)
		if err != nil {
			adminErr(c, http.StatusServiceUnavailable, "store unavailable")
			return
		}
		var found *accounts.AccountView
		for i := range view[tier.Name] {
			if view[tier.Name][i].Name == in.Account {
				found = &view[tier.Name][i]
			}
		}
		switch {
		case found == nil:
			adminErr(c, http.StatusBadRequest, "account "+strqt(in.Account)+" is not in tier "+tier.Name)
			return
		case found.Blacklist != nil:
			adminErr(c, http.StatusConflict, "account "+in.Account+" is blacklisted: "+found.Blacklist.Reason)
			return
		case found.SlotsUsed >= found.SlotsTotal:
			adminErr(c, http.StatusConflict, "account "+in.Account+" is full ("+strconv.Itoa(found.SlotsUsed)+"/"+strconv.Itoa(found.SlotsTotal)+" slots)")
			return
		}
	}
	unbound := 1
	if in.Account != "" {
		unbound = 0 // bound at once: it takes its slot now
	}
	warning, ok := s.checkSelling(c, tier.Name, unbound, in.Strict)
	if !ok {
		return
	}
	spec := issueSpec(tier, in.FromFirstUse, in.Note, in.Account)
	spec.Budgets = in.Budgets.budgets()
	key, rec, err := s.d.Keys.IssueWith(ctx, spec)
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "could not issue the key: "+err.Error())
		return
	}
	if in.Account != "" {
		if _, err := s.d.Pool.BindTo(ctx, rec.Hash, tier.Name, tier.Slots, in.Account); err != nil {
			// Take the key back, and its slot: a bind whose answer was
			// lost (a store reply past the read timeout) may have run.
			_, _ = s.d.Keys.Revoke(ctx, rec.ID)
			_, _ = s.d.Pool.Retire(ctx, rec.Hash)
			if !bindRefused(err) {
				adminErr(c, http.StatusServiceUnavailable, "store unavailable: the key was not issued")
				return
			}
			// Lost a race for the last slot, or the account changed.
			adminErr(c, http.StatusConflict, "could not bind to "+in.Account+": "+err.Error())
			return
		}
	}
	s.log.WithFields(map[string]any{"key": rec.ID, "tier": tier.Name}).Info("key issued")
	res := gin.H{"key": key, "record": s.viewKey(rec, map[string]string{rec.Hash: in.Account})}
	if warning != "" {
		res["warning"] = warning
	}
	c.JSON(http.StatusCreated, res)
}

func strqt(s string) string { return "\"" + s + "\"" }

func (s *Server) adminShowKey(c *gin.Context) {
	ctx := c.Request.Context()
	rec, err := s.d.Keys.Get(ctx, c.Param("ref"))
	if err != nil {
		s.keyErr(c, err)
		return
	}
	out := gin.H{"key": s.viewKey(rec, s.bindings(ctx))}
	if s.d.Usage != nil {
		if sum, err := s.d.Usage.Key(ctx, rec.Hash); err == nil {
			out["usage"] = sum
			out["cost_usd"] = s.costOf(sum)
		}
	}
	if tier, ok := s.d.Tiers.Get(rec.Tier); ok {
		q := gin.H{}
		for fam, limit := range tier.Quotas {
			if res, err := s.d.Limiter.Peek(ctx, s.quotaRequest(&caller{Hash: rec.Hash, Tier: tier}, fam, limit)); err == nil {
				q[fam] = gin.H{"used": res.Count, "limit": limit, "reset": res.Reset.UTC()}
			}
		}
		out["quotas"] = q
		if bv, err := s.budgetViews(ctx, rec, tier); err == nil && bv != nil {
			out["budgets"] = bv
		}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) keyErr(c *gin.Context, err error) {
	switch {
	case errors.Is(err, keys.ErrNotFound), errors.Is(err, keys.ErrFormat):
		adminErr(c, http.StatusNotFound, "no such key")
	default:
		adminErr(c, http.StatusServiceUnavailable, "store unavailable: "+err.Error())
	}
}

func (s *Server) adminRevokeKey(c *gin.Context) {
	ctx := c.Request.Context()
	rec, err := s.d.Keys.Revoke(ctx, c.Param("ref"))
	if err != nil {
		// The store may have taken the revocation while the ledger did
		// not: the key is refused from now on, so its slot goes back too.
		if cur, gerr := s.d.Keys.Get(ctx, c.Param("ref")); gerr == nil && cur.Status == keys.StatusRevoked {
			_, _ = s.d.Pool.Retire(ctx, cur.Hash)
		}
		s.keyErr(c, err)
		return
	}
	if _, err := s.d.Pool.Retire(ctx, rec.Hash); err != nil {
		s.log.WithError(err).Warn("revoked key's slot not released; the next sync releases it")
	}
	s.log.WithField("key", rec.ID).Info("key revoked")
	c.JSON(http.StatusOK, gin.H{"key": s.viewKey(rec, nil)})
}

// PoolTier is one tier's block of GET /admin/api/pool.
type PoolTier struct {
	Tier            string `json:"tier"`
	SlotsPerAccount int    `json:"slots_per_account"`
	SlotsUsed       int    `json:"slots_used"`
	SlotsTotal      int    `json:"slots_total"`
	// Sold keys against slots: active keys of the tier, and how many of
	// them are not bound yet (each will need a free slot at first use).
	SoldKeys    int           `json:"sold_keys"`
	UnboundKeys int           `json:"unbound_keys"`
	FreeSlots   int           `json:"free_slots"`
	Accounts    []AccountView `json:"accounts"`
}

// AccountView is an account as the admin API shows it: never its credential.
type AccountView struct {
	accounts.AccountView
	Kind            string     `json:"kind"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	NextRefresh     *time.Time `json:"next_refresh,omitempty"`
	RefreshAttempts int        `json:"refresh_attempts_24h"`
	CooldownUntil   *time.Time `json:"cooldown_until,omitempty"`
	LastRefreshErr  string     `json:"last_refresh_error,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (s *Server) poolData(ctx context.Context, tierFilter string) ([]PoolTier, error) {
	names := s.d.Tiers.Names()
	if tierFilter != "" {
		if _, ok := s.d.Tiers.Get(tierFilter); !ok {
			return nil, errUnknownTier
		}
		names = []string{tierFilter}
	}
	view, err := s.d.Pool.View(ctx, names, s.slotsOf)
	if err != nil {
		return nil, err
	}
	kinds := map[string]accounts.Account{}
	if all, err := s.d.Accounts.All(ctx); err == nil {
		for _, a := range all {
			kinds[a.Name] = a
		}
	}
	refreshes := map[string]refresh.Status{}
	if s.d.Refresher != nil {
		if st, err := s.d.Refresher.Status(ctx); err == nil {
			for _, r := range st {
				refreshes[r.Name] = r
			}
		}
	}
	out := make([]PoolTier, 0, len(names))
	for _, t := range names {
		pt := PoolTier{Tier: t, SlotsPerAccount: s.slotsOf(t), Accounts: []AccountView{}}
		for _, a := range view[t] {
			av := AccountView{AccountView: a, Kind: string(kinds[a.Name].Kind)}
			if acc, ok := kinds[a.Name]; ok && acc.Kind == accounts.OAuth {
				av.ExpiresAt = timePtr(acc.ExpiresAt)
			}
			if r, ok := refreshes[a.Name]; ok {
				av.NextRefresh, av.CooldownUntil = timePtr(r.NextRefresh), timePtr(r.CooldownUntil)
				if r.CooldownUntil.Before(s.d.Clock.Now()) {
					av.CooldownUntil = nil
				}
				av.RefreshAttempts, av.LastRefreshErr = r.Attempts24h, r.LastError
			}
			pt.SlotsUsed += a.SlotsUsed
			if a.Blacklist == nil {
				pt.SlotsTotal += a.SlotsTotal
				pt.FreeSlots += max(0, a.SlotsTotal-a.SlotsUsed)
			}
			pt.Accounts = append(pt.Accounts, av)
		}
		out = append(out, pt)
	}
	if stock, err := s.stock(ctx); err == nil {
		for i := range out {
			st := stock[out[i].Tier]
			out[i].SoldKeys, out[i].UnboundKeys = st.sold, st.unbound
		}
	}
	return out, nil
}

var errUnknownTier = errors.New("unknown tier")

// bindRefused reports whether a bind failed on the pool's answer (full,
// blacklisted, unknown…), not on the store.
func bindRefused(err error) bool {
	for _, e := range []error{accounts.ErrFull, accounts.ErrEmpty, accounts.ErrUnknownAccount, accounts.ErrBlacklisted, accounts.ErrKeyInactive} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) adminPool(c *gin.Context) {
	data, err := s.poolData(c.Request.Context(), c.Query("tier"))
	if errors.Is(err, errUnknownTier) {
		adminErr(c, http.StatusBadRequest, "unknown tier "+strqt(c.Query("tier")))
		return
	}
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	c.JSON(http.StatusOK, gin.H{"tiers": data})
}

func (s *Server) adminAccounts(c *gin.Context) {
	data, err := s.poolData(c.Request.Context(), "")
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	var out []AccountView
	for _, t := range data {
		out = append(out, t.Accounts...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	c.JSON(http.StatusOK, gin.H{"accounts": out})
}

func (s *Server) knownAccount(ctx context.Context, name string) bool {
	_, err := s.d.Accounts.Get(ctx, name)
	return err == nil
}

func (s *Server) adminRecover(c *gin.Context) {
	ctx := c.Request.Context()
	name := c.Param("name")
	if !s.knownAccount(ctx, name) {
		adminErr(c, http.StatusNotFound, "no account "+strqt(name))
		return
	}
	was, err := s.d.Pool.Recover(ctx, name)
	if errors.Is(err, accounts.ErrDisabled) {
		adminErr(c, http.StatusConflict, "account "+name+" is disabled, not blacklisted: recover does not end that; use `claude-route account enable "+name+"` (or the dashboard's enable)")
		return
	}
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	if s.d.Refresher != nil {
		// A recovered account gets fresh refresh attempts and a timer again.
		if err := s.d.Refresher.Forget(ctx, name); err != nil {
			s.log.WithError(err).Warn("could not reset the refresh state")
		}
		if err := s.d.Refresher.Replan(ctx); err != nil {
			s.log.WithError(err).Warn("could not re-plan refreshes")
		}
	}
	c.JSON(http.StatusOK, gin.H{"account": name, "was_blacklisted": was})
}

func (s *Server) adminBlacklist(c *gin.Context) {
	ctx := c.Request.Context()
	name := c.Param("name")
	var in struct {
		Reason string `json:"reason"`
	}
	_ = c.ShouldBindJSON(&in)
	if in.Reason == "" {
		in.Reason = "blacklisted by the operator"
	}
	if !s.knownAccount(ctx, name) {
		adminErr(c, http.StatusNotFound, "no account "+strqt(name))
		return
	}
	if err := s.d.Pool.Blacklist(ctx, name, truncate(in.Reason, 200)); err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	c.JSON(http.StatusOK, gin.H{"account": name, "blacklisted": true})
}

// syncNow runs a sync that read the files after this call (a sync that
// only joined one already running may have read them before an
// operator's change; the folder generation tells).
func (s *Server) syncNow(ctx context.Context) (syncer.Report, error) {
	return s.d.Syncer.SyncAfter(ctx)
}

func (s *Server) adminSync(c *gin.Context) {
	if s.d.Syncer == nil {
		adminErr(c, http.StatusNotFound, "sync is not configured")
		return
	}
	// A sync is not abandoned half-way because the operator's client left.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 5*time.Minute)
	defer cancel()
	rep, err := s.syncNow(ctx)
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "sync failed: "+err.Error())
		return
	}
	c.JSON(http.StatusOK, gin.H{"report": rep, "summary": rep.String()})
}

func (s *Server) adminStatus(c *gin.Context) {
	ctx := c.Request.Context()
	out := gin.H{"time": s.d.Clock.Now().UTC()}
	if err := s.d.Store.Ping(ctx); err != nil {
		out["store"] = gin.H{"ok": false, "error": "unreachable"}
		c.JSON(http.StatusServiceUnavailable, out)
		return
	}
	out["store"] = gin.H{"ok": true}
	if data, err := s.poolData(ctx, ""); err == nil {
		var accts []AccountView
		for _, t := range data {
			accts = append(accts, t.Accounts...)
		}
		out["accounts"] = accts
		out["tiers"] = data
	}
	if s.d.Syncer != nil {
		if last, err := s.d.Syncer.Last(ctx); err == nil && last != nil {
			out["last_sync"] = gin.H{"report": last, "summary": last.String()}
		}
	}
	if s.d.Usage != nil {
		if sum, err := s.d.Usage.Overall(ctx); err == nil {
			out["usage"] = sum
			out["cost_usd"] = s.costOf(sum)
		}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) adminUsage(c *gin.Context) {
	ctx := c.Request.Context()
	if s.d.Usage == nil {
		adminErr(c, http.StatusNotFound, "usage accounting is not configured")
		return
	}
	if ref := c.Query("key"); ref != "" {
		rec, err := s.d.Keys.Get(ctx, ref)
		if err != nil {
			s.keyErr(c, err)
			return
		}
		sum, err := s.d.Usage.Key(ctx, rec.Hash)
		if err != nil {
			adminErr(c, http.StatusServiceUnavailable, "store unavailable")
			return
		}
		c.JSON(http.StatusOK, gin.H{"key": rec.ID, "usage": sum, "cost_usd": s.costOf(sum)})
		return
	}
	overall, err := s.d.Usage.Overall(ctx)
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	// A list, not a map keyed by name: account names are data, and every
	// key of the JSON the service emits is a snake_case field name.
	type accountUsage struct {
		Name  string        `json:"name"`
		Tier  string        `json:"tier"`
		Usage usage.Summary `json:"usage"`
		Cost  CostView      `json:"cost_usd"`
	}
	per := []accountUsage{}
	byTier := map[string]*CostView{}
	if all, err := s.d.Accounts.All(ctx); err == nil {
		sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
		for _, a := range all {
			if sum, err := s.d.Usage.Account(ctx, a.Name); err == nil {
				cv := s.costOf(sum)
				per = append(per, accountUsage{Name: a.Name, Tier: a.Tier, Usage: sum, Cost: cv})
				if byTier[a.Tier] == nil {
					byTier[a.Tier] = &CostView{}
				}
				byTier[a.Tier].add(cv)
			}
		}
	}
	// A tier's cost is the cost of its accounts' traffic.
	tiersOut := []TierMoney{}
	for _, t := range s.d.Tiers.Names() {
		cv := CostView{}
		if c := byTier[t]; c != nil {
			cv = *c
		}
		tiersOut = append(tiersOut, s.tierMoney(t, cv))
	}
	c.JSON(http.StatusOK, gin.H{"overall": overall, "cost_usd": s.costOf(overall), "accounts": per, "tiers": tiersOut})
}
