package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/keys"
)

// The operator's lifecycle verbs: keys (extend, renew, move, rebind, note,
// issue many) and accounts (add, replace, disable, enable, delete,
// refresh). Each is recorded where a flush cannot lose it: the ledger for
// keys, the account file for accounts.

func (s *Server) opsRoutes(a *gin.RouterGroup) {
	a.POST("/keys/batch", s.adminIssueKeys)
	a.POST("/keys/:ref/extend", s.adminExtendKey)
	a.POST("/keys/:ref/renew", s.adminRenewKey)
	a.POST("/keys/:ref/move", s.adminMoveKey)
	a.POST("/keys/:ref/rebind", s.adminRebindKey)
	a.POST("/keys/:ref/note", s.adminNoteKey)
	a.POST("/keys/:ref/budgets", s.adminBudgetKey)
	a.POST("/accounts", s.adminAddAccount)
	a.GET("/accounts/:name", s.adminShowAccount)
	a.PUT("/accounts/:name/credentials", s.adminReplaceAccount)
	a.POST("/accounts/:name/disable", s.adminDisableAccount)
	a.POST("/accounts/:name/enable", s.adminEnableAccount)
	a.DELETE("/accounts/:name", s.adminDeleteAccount)
	a.POST("/accounts/:name/refresh", s.adminRefreshAccount)
	a.POST("/accounts/:name/probe", s.adminProbeAccount)
	s.loginRoutes(a)
}

// lifecycleErr maps a key verb's error to the admin answer.
func (s *Server) lifecycleErr(c *gin.Context, err error) {
	switch {
	case errors.Is(err, keys.ErrRevokedKey):
		adminErr(c, http.StatusConflict, "the key is revoked; a revoked key cannot change")
	case errors.Is(err, keys.ErrConflict):
		adminErr(c, http.StatusConflict, err.Error())
	default:
		s.keyErr(c, err)
	}
}

func (s *Server) keyAnswer(c *gin.Context, ctx context.Context, rec keys.Record) {
	c.JSON(http.StatusOK, gin.H{"key": s.viewKey(rec, s.bindings(ctx))})
}

// adminExtendKey sets a new expiry: {"days": N} adds N days to the current
// expiry (or to now, for a key already expired), {"until": "2026-12-31"}
// or an RFC 3339 time sets it outright.
func (s *Server) adminExtendKey(c *gin.Context) {
	ctx := c.Request.Context()
	var in struct {
		Days  int    `json:"days"`
		Until string `json:"until"`
	}
	if err := c.ShouldBindJSON(&in); err != nil || (in.Days == 0) == (in.Until == "") {
		adminErr(c, http.StatusBadRequest, `body must be {"days": N} or {"until": "YYYY-MM-DD" or RFC 3339}`)
		return
	}
	rec, err := s.d.Keys.Get(ctx, c.Param("ref"))
	if err != nil {
		s.keyErr(c, err)
		return
	}
	now := s.d.Clock.Now()
	var until time.Time
	if in.Until != "" {
		if until, err = parseDate(in.Until); err != nil {
			adminErr(c, http.StatusBadRequest, err.Error())
			return
		}
	} else {
		if in.Days < 0 || in.Days > 3650 {
			adminErr(c, http.StatusBadRequest, "days must be between 1 and 3650")
			return
		}
		from := rec.Expires
		if from.IsZero() {
			adminErr(c, http.StatusBadRequest, "the key never expires; use until to give it an end")
			return
		}
		if from.Before(now) {
			from = now
		}
		until = from.Add(time.Duration(in.Days) * 24 * time.Hour)
	}
	if !until.After(now) {
		adminErr(c, http.StatusBadRequest, "the new expiry is in the past")
		return
	}
	rec, err = s.d.Keys.SetExpiry(ctx, rec.ID, until)
	if err != nil {
		s.lifecycleErr(c, err)
		return
	}
	s.log.WithFields(map[string]any{"key": rec.ID, "expires": until.UTC().Format(time.RFC3339)}).Info("key extended")
	s.keyAnswer(c, ctx, rec)
}

// parseDate reads YYYY-MM-DD (the end of that day, UTC) or RFC 3339.
func parseDate(v string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t.Add(24*time.Hour - time.Millisecond).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, errors.New("until must be YYYY-MM-DD or an RFC 3339 time, not " + strqt(v))
}

// adminRenewKey gives the key a fresh validity of its tier from now.
func (s *Server) adminRenewKey(c *gin.Context) {
	ctx := c.Request.Context()
	rec, err := s.d.Keys.Get(ctx, c.Param("ref"))
	if err != nil {
		s.keyErr(c, err)
		return
	}
	tier, ok := s.d.Tiers.Get(rec.Tier)
	if !ok || tier.Validity <= 0 {
		adminErr(c, http.StatusBadRequest, "tier "+rec.Tier+" keys never expire: nothing to renew")
		return
	}
	var in struct {
		Force bool `json:"force"`
	}
	_ = c.ShouldBindJSON(&in) // no body: not forced
	until := s.d.Clock.Now().Add(time.Duration(tier.Validity))
	// A renewal never takes time away from a customer unless asked to.
	switch {
	case in.Force:
	case rec.NotActivated():
		adminErr(c, http.StatusConflict, "key "+rec.ID+" is not activated yet (its validity of "+time.Duration(tier.Validity).String()+" starts at its first request): renew would start them now; use --force to do that")
		return
	case !rec.Expires.IsZero() && until.Before(rec.Expires):
		adminErr(c, http.StatusConflict, "renew would shorten key "+rec.ID+"'s expiry from "+rec.Expires.UTC().Format(time.RFC3339)+" to "+until.UTC().Format(time.RFC3339)+"; use --force to shorten it, or key extend to add time")
		return
	}
	rec, err = s.d.Keys.SetExpiry(ctx, rec.ID, until)
	if err != nil {
		s.lifecycleErr(c, err)
		return
	}
	s.log.WithField("key", rec.ID).Info("key renewed")
	s.keyAnswer(c, ctx, rec)
}

// adminMoveKey moves a key to another tier. It keeps its raw value, usage
// and quota windows (they follow the new tier's limits). A bound key is
// rebound in the new tier by the pool's bind script, which frees the old
// slot and takes the new one in one step; a full tier refuses and the
// record goes back, so nothing changed.
func (s *Server) adminMoveKey(c *gin.Context) {
	ctx := c.Request.Context()
	var in struct {
		Tier string `json:"tier"`
	}
	if err := c.ShouldBindJSON(&in); err != nil || in.Tier == "" {
		adminErr(c, http.StatusBadRequest, `body must be {"tier": T}`)
		return
	}
	to, ok := s.d.Tiers.Get(in.Tier)
	if !ok {
		adminErr(c, http.StatusBadRequest, "unknown tier "+strqt(in.Tier)+"; tiers: "+strings.Join(s.d.Tiers.Names(), ", "))
		return
	}
	rec, err := s.d.Keys.Get(ctx, c.Param("ref"))
	if err != nil {
		s.keyErr(c, err)
		return
	}
	if rec.Tier == to.Name {
		adminErr(c, http.StatusBadRequest, "the key is already in tier "+to.Name)
		return
	}
	from := rec.Tier
	bound, err := s.d.Pool.Bound(ctx, rec.Hash)
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	// The record first: a request arriving meanwhile then binds in the new
	// tier, which is what this move does next anyway.
	moved, err := s.d.Keys.SetTier(ctx, rec.ID, from, to.Name)
	if err != nil {
		s.lifecycleErr(c, err)
		return
	}
	if bound != "" {
		b, err := s.d.Pool.Bind(ctx, rec.Hash, to.Name, to.Slots)
		if err != nil {
			if _, uerr := s.d.Keys.SetTier(context.WithoutCancel(ctx), rec.ID, to.Name, from); uerr != nil {
				s.log.WithError(uerr).WithField("key", rec.ID).Error("move refused by the pool and could not be undone")
			}
			adminErr(c, http.StatusConflict, "cannot move to "+to.Name+": "+err.Error()+"; nothing changed")
			return
		}
		if err := s.d.Keys.SetAccount(ctx, rec.Hash, b.Account); err != nil {
			s.log.WithError(err).Warn("moved key's binding not recorded in the ledger; the next sync records it")
		}
	}
	s.log.WithFields(map[string]any{"key": rec.ID, "from": from, "to": to.Name}).Info("key moved")
	s.keyAnswer(c, ctx, moved)
}

// adminRebindKey binds the key to a named account of its tier, freeing its
// old slot in the same script.
func (s *Server) adminRebindKey(c *gin.Context) {
	ctx := c.Request.Context()
	var in struct {
		Account string `json:"account"`
	}
	if err := c.ShouldBindJSON(&in); err != nil || in.Account == "" {
		adminErr(c, http.StatusBadRequest, `body must be {"account": NAME}`)
		return
	}
	rec, err := s.d.Keys.Get(ctx, c.Param("ref"))
	if err != nil {
		s.keyErr(c, err)
		return
	}
	if err := rec.Active(s.d.Clock.Now()); err != nil {
		adminErr(c, http.StatusConflict, "the key is not active: "+err.Error())
		return
	}
	tier, ok := s.d.Tiers.Get(rec.Tier)
	if !ok {
		adminErr(c, http.StatusConflict, "the key's tier "+rec.Tier+" is not configured")
		return
	}
	if _, err := s.d.Pool.BindTo(ctx, rec.Hash, tier.Name, tier.Slots, in.Account); err != nil {
		switch {
		case errors.Is(err, accounts.ErrUnknownAccount):
			adminErr(c, http.StatusBadRequest, err.Error())
		case errors.Is(err, accounts.ErrFull), errors.Is(err, accounts.ErrBlacklisted):
			adminErr(c, http.StatusConflict, err.Error())
		default:
			adminErr(c, http.StatusServiceUnavailable, "store unavailable")
		}
		return
	}
	if err := s.d.Keys.SetAccount(ctx, rec.Hash, in.Account); err != nil {
		adminErr(c, http.StatusServiceUnavailable, "bound, but the ledger did not record it: "+err.Error())
		return
	}
	rec.Account = in.Account
	s.log.WithFields(map[string]any{"key": rec.ID, "account": in.Account}).Info("key rebound")
	s.keyAnswer(c, ctx, rec)
}

func (s *Server) adminNoteKey(c *gin.Context) {
	ctx := c.Request.Context()
	var in struct {
		Note *string `json:"note"`
	}
	if err := c.ShouldBindJSON(&in); err != nil || in.Note == nil {
		adminErr(c, http.StatusBadRequest, `body must be {"note": TEXT}`)
		return
	}
	if len(*in.Note) > 500 {
		adminErr(c, http.StatusBadRequest, "note is longer than 500 characters")
		return
	}
	rec, err := s.d.Keys.SetNote(ctx, c.Param("ref"), *in.Note)
	if err != nil {
		s.lifecycleErr(c, err)
		return
	}
	s.keyAnswer(c, ctx, rec)
}

// IssuedKey is one key of a batch: the raw key, shown this once.
type IssuedKey struct {
	Key string `json:"key"`
	KeyView
}

// adminIssueKeys issues count keys of a tier (at most 1000).
func (s *Server) adminIssueKeys(c *gin.Context) {
	ctx := c.Request.Context()
	var in struct {
		Tier  string `json:"tier"`
		Count int    `json:"count"`
		Note  string `json:"note"`
		// FromFirstUse and Strict: see adminIssueKey.
		FromFirstUse *bool      `json:"from_first_use"`
		Strict       bool       `json:"strict"`
		Budgets      *BudgetsIn `json:"budgets"`
	}
	if err := c.ShouldBindJSON(&in); err != nil {
		adminErr(c, http.StatusBadRequest, "body must be JSON {tier, count, note?, budgets?}")
		return
	}
	if !checkBudgetsIn(c, in.Budgets) {
		return
	}
	tier, ok := s.d.Tiers.Get(in.Tier)
	switch {
	case !ok:
		adminErr(c, http.StatusBadRequest, "unknown tier "+strqt(in.Tier)+"; tiers: "+strings.Join(s.d.Tiers.Names(), ", "))
		return
	case in.Count < 1 || in.Count > 1000:
		adminErr(c, http.StatusBadRequest, "count must be between 1 and 1000")
		return
	case len(in.Note) > 500:
		adminErr(c, http.StatusBadRequest, "note is longer than 500 characters")
		return
	}
	warning, ok := s.checkSelling(c, tier.Name, in.Count, in.Strict)
	if !ok {
		return
	}
	// One ledger commit for the whole batch: all the keys or none.
	spec := issueSpec(tier, in.FromFirstUse, in.Note, "")
	spec.Budgets = in.Budgets.budgets()
	raw, recs, err := s.d.Keys.IssueManyWith(ctx, spec, in.Count)
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "could not issue the keys: "+err.Error())
		return
	}
	out := make([]IssuedKey, len(recs))
	for i, rec := range recs {
		out[i] = IssuedKey{Key: raw[i], KeyView: s.viewKey(rec, nil)}
	}
	s.log.WithFields(map[string]any{"tier": tier.Name, "count": len(out)}).Info("keys issued")
	res := gin.H{"keys": out}
	if warning != "" {
		res["warning"] = warning
	}
	c.JSON(http.StatusCreated, res)
}

// ---------- accounts ----------

// AccountDetail is one account as the account verbs answer: kind, expiry
// and a fingerprint of the credential, never the credential.
type AccountDetail struct {
	Name string `json:"name"`
	Tier string `json:"tier"`
	accounts.Summary
	Synced bool   `json:"synced"`
	Sync   string `json:"sync,omitempty"`
	// Probe: replace tries the new credentials once; Recovered says they
	// worked and took the account off the blacklist.
	Probe     *ProbeView `json:"probe,omitempty"`
	Recovered bool       `json:"recovered,omitempty"`
}

func (s *Server) accountDir(c *gin.Context) (string, bool) {
	if s.cfg.AccountDir == "" {
		adminErr(c, http.StatusNotFound, "no account folder is configured")
		return "", false
	}
	return s.cfg.AccountDir, true
}

func readBody(c *gin.Context) ([]byte, bool) {
	b, err := io.ReadAll(io.LimitReader(c.Request.Body, 64<<10+1))
	if err != nil {
		adminErr(c, http.StatusBadRequest, "could not read the body")
		return nil, false
	}
	return b, true
}

// syncAfter runs a full sync so Redis follows the folder at once, and
// tells the operator how it went. A failed sync leaves the file written;
// the next sync picks it up.
func (s *Server) syncAfter(c *gin.Context, d *AccountDetail) {
	if s.d.Syncer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), 2*time.Minute)
	defer cancel()
	rep, err := s.syncNow(ctx)
	if err != nil {
		d.Sync = "written, but the sync failed (the next one picks it up): " + err.Error()
		return
	}
	d.Synced, d.Sync = true, rep.String()
}

func (s *Server) fileErr(c *gin.Context, err error) {
	switch {
	case errors.Is(err, accounts.ErrBadFile), errors.Is(err, accounts.ErrBadName):
		adminErr(c, http.StatusBadRequest, err.Error())
	case errors.Is(err, accounts.ErrNotWritable):
		adminErr(c, http.StatusConflict, err.Error())
	case errors.Is(err, accounts.ErrExists):
		adminErr(c, http.StatusConflict, err.Error())
	case errors.Is(err, accounts.ErrNoSuchFile):
		adminErr(c, http.StatusNotFound, err.Error())
	default:
		adminErr(c, http.StatusInternalServerError, "account folder: "+err.Error())
	}
}

// adminAddAccount: POST /accounts?tier=T&name=N with the account file (either
// shape) as the body, or {"tier","name","credentials":{…}}.
func (s *Server) adminAddAccount(c *gin.Context) {
	dir, ok := s.accountDir(c)
	if !ok {
		return
	}
	body, ok := readBody(c)
	if !ok {
		return
	}
	tierName, name := c.Query("tier"), c.Query("name")
	var wrapped struct {
		Tier        string          `json:"tier"`
		Name        string          `json:"name"`
		Credentials json.RawMessage `json:"credentials"`
	}
	if json.Unmarshal(body, &wrapped) == nil && len(wrapped.Credentials) > 0 {
		tierName, name, body = wrapped.Tier, wrapped.Name, wrapped.Credentials
	}
	if _, known := s.d.Tiers.Get(tierName); !known {
		adminErr(c, http.StatusBadRequest, "unknown tier "+strqt(tierName)+"; tiers: "+strings.Join(s.d.Tiers.Names(), ", "))
		return
	}
	a, err := accounts.AddFile(dir, tierName, name, body)
	if err != nil {
		s.fileErr(c, err)
		return
	}
	d := AccountDetail{Name: a.Name, Tier: a.Tier, Summary: accounts.Summarize(a)}
	s.syncAfter(c, &d)
	s.log.WithFields(map[string]any{"account": a.Name, "tier": a.Tier}).Info("account added")
	c.JSON(http.StatusCreated, gin.H{"account": d})
}

func (s *Server) adminShowAccount(c *gin.Context) {
	dir, ok := s.accountDir(c)
	if !ok {
		return
	}
	name := c.Param("name")
	path, err := accounts.FindFile(dir, name)
	if err != nil {
		s.fileErr(c, err)
		return
	}
	a, err := accounts.Parse(mustRead(path))
	if err != nil {
		adminErr(c, http.StatusConflict, "the account file does not parse: "+err.Error())
		return
	}
	// Redis has the live credentials (a refresh may be ahead of the file).
	if live, err := s.d.Accounts.Get(c.Request.Context(), name); err == nil {
		live.Disabled = a.Disabled
		a = live
	}
	rel, _ := filepath.Rel(dir, path)
	c.JSON(http.StatusOK, gin.H{"account": AccountDetail{Name: name, Tier: strings.Split(filepath.ToSlash(rel), "/")[0], Summary: accounts.Summarize(a), Synced: true}})
}

func mustRead(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func (s *Server) adminReplaceAccount(c *gin.Context) {
	dir, ok := s.accountDir(c)
	if !ok {
		return
	}
	body, ok := readBody(c)
	if !ok {
		return
	}
	a, err := accounts.ReplaceFile(dir, c.Param("name"), body)
	if err != nil {
		s.fileErr(c, err)
		return
	}
	rel, _ := filepath.Rel(dir, a.Path)
	d := AccountDetail{Name: a.Name, Tier: strings.Split(filepath.ToSlash(rel), "/")[0], Summary: accounts.Summarize(a)}
	s.syncAfter(c, &d)
	if d.Synced {
		s.recoverIfWorking(c.Request.Context(), &d)
	}
	s.log.WithField("account", a.Name).Info("account credentials replaced")
	c.JSON(http.StatusOK, gin.H{"account": d})
}

func (s *Server) setAccountDisabled(c *gin.Context, disabled bool) {
	dir, ok := s.accountDir(c)
	if !ok {
		return
	}
	name := c.Param("name")
	if _, err := accounts.SetFileDisabled(dir, name, disabled); err != nil {
		s.fileErr(c, err)
		return
	}
	// The pool follows at once, without waiting for the sync to reach it;
	// the sync below then finds it already in step with the file.
	if _, err := s.d.Pool.SetDisabled(c.Request.Context(), name, disabled); err != nil {
		adminErr(c, http.StatusServiceUnavailable, "the file says so, but the store did not take it (the next sync will): "+err.Error())
		return
	}
	d := AccountDetail{Name: name, Summary: accounts.Summary{Disabled: disabled}}
	s.syncAfter(c, &d)
	c.JSON(http.StatusOK, gin.H{"account": name, "disabled": disabled, "sync": d.Sync})
}

func (s *Server) adminDisableAccount(c *gin.Context) { s.setAccountDisabled(c, true) }
func (s *Server) adminEnableAccount(c *gin.Context)  { s.setAccountDisabled(c, false) }

func (s *Server) adminDeleteAccount(c *gin.Context) {
	dir, ok := s.accountDir(c)
	if !ok {
		return
	}
	name := c.Param("name")
	dst, err := accounts.TrashFile(dir, name, s.d.Clock.Now())
	if err != nil {
		s.fileErr(c, err)
		return
	}
	d := AccountDetail{Name: name}
	s.syncAfter(c, &d)
	rel, _ := filepath.Rel(dir, dst)
	s.log.WithField("account", name).Info("account deleted (file moved to the trash)")
	c.JSON(http.StatusOK, gin.H{"account": name, "deleted": true, "trash": rel, "sync": d.Sync})
}

func (s *Server) adminRefreshAccount(c *gin.Context) {
	ctx := c.Request.Context()
	name := c.Param("name")
	a, err := s.d.Accounts.Get(ctx, name)
	if err != nil {
		adminErr(c, http.StatusNotFound, "no account "+strqt(name))
		return
	}
	if a.Kind != accounts.OAuth {
		adminErr(c, http.StatusBadRequest, name+" uses an API key: there is no token to refresh")
		return
	}
	if s.d.Refresher == nil {
		adminErr(c, http.StatusNotFound, "refresh is not configured")
		return
	}
	creds, err := s.d.Refresher.RefreshNow(ctx, name, a.AccessToken)
	if err != nil {
		adminErr(c, http.StatusBadGateway, "refresh failed: "+err.Error())
		return
	}
	c.JSON(http.StatusOK, gin.H{"account": name, "expires_at": timePtr(creds.ExpiresAt)})
}
