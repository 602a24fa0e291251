package server

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/login"
)

// `account login`: a subscription account added by signing in, without
// copying a credentials file (package login runs the OAuth flow). Two
// calls, so that any replica can take the second:
//
//	POST /admin/api/account-logins         {"tier","name"} → the sign-in URL and the login's id
//	POST /admin/api/account-logins/finish  {"login","code"} → the account, written and synced

func (s *Server) loginRoutes(a *gin.RouterGroup) {
	a.POST("/account-logins", s.adminStartLogin)
	a.POST("/account-logins/finish", s.adminFinishLogin)
}

func (s *Server) loginFlow(c *gin.Context) (LoginFlow, string, bool) {
	dir, ok := s.accountDir(c)
	if !ok {
		return nil, "", false
	}
	if s.d.Login == nil {
		adminErr(c, http.StatusNotFound, "login is not configured (OAUTH_TOKEN_URL)")
		return nil, "", false
	}
	return s.d.Login, dir, true
}

// checkNewAccount refuses, before anyone signs in, what the file write
// would refuse after: an unknown tier, a bad name, a name in use.
func (s *Server) checkNewAccount(c *gin.Context, dir, tier, name string) bool {
	if _, known := s.d.Tiers.Get(tier); !known {
		adminErr(c, http.StatusBadRequest, "unknown tier "+strqt(tier)+"; tiers: "+strings.Join(s.d.Tiers.Names(), ", "))
		return false
	}
	if err := accounts.CheckName(name); err != nil {
		adminErr(c, http.StatusBadRequest, err.Error())
		return false
	}
	if p, err := accounts.FindFile(dir, name); err == nil {
		adminErr(c, http.StatusConflict, "an account named "+name+" already exists ("+p+"); pick another name, or use replace")
		return false
	}
	return true
}

func (s *Server) adminStartLogin(c *gin.Context) {
	f, dir, ok := s.loginFlow(c)
	if !ok {
		return
	}
	var in struct {
		Tier string `json:"tier"`
		Name string `json:"name"`
	}
	if err := c.ShouldBindJSON(&in); err != nil {
		adminErr(c, http.StatusBadRequest, `body must be {"tier": T, "name": N}`)
		return
	}
	if !s.checkNewAccount(c, dir, in.Tier, in.Name) {
		return
	}
	st, err := f.Start(c.Request.Context(), in.Tier, in.Name)
	if err != nil {
		adminErr(c, http.StatusServiceUnavailable, "store unavailable: "+err.Error())
		return
	}
	c.JSON(http.StatusCreated, st)
}

func (s *Server) adminFinishLogin(c *gin.Context) {
	f, dir, ok := s.loginFlow(c)
	if !ok {
		return
	}
	var in struct {
		Login string `json:"login"`
		Code  string `json:"code"`
	}
	if err := c.ShouldBindJSON(&in); err != nil || in.Login == "" {
		adminErr(c, http.StatusBadRequest, `body must be {"login": ID, "code": "CODE#STATE"}`)
		return
	}
	st, tok, err := f.Finish(c.Request.Context(), in.Login, in.Code)
	switch {
	case errors.Is(err, login.ErrBadCode), errors.Is(err, login.ErrStateMismatch),
		errors.Is(err, login.ErrNoLogin), errors.Is(err, login.ErrCodeRefused):
		adminErr(c, http.StatusBadRequest, err.Error()+"; nothing was written")
		return
	case err != nil:
		adminErr(c, http.StatusBadGateway, "login failed, nothing was written: "+err.Error())
		return
	}
	a, err := accounts.AddFile(dir, st.Tier, st.Name, login.File(tok))
	if err != nil {
		s.fileErr(c, err)
		return
	}
	d := AccountDetail{Name: a.Name, Tier: a.Tier, Summary: accounts.Summarize(a)}
	s.syncAfter(c, &d)
	s.log.WithFields(map[string]any{"account": a.Name, "tier": a.Tier}).Info("account added by login")
	c.JSON(http.StatusCreated, gin.H{"account": d})
}
