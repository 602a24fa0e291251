package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/probe"
)

// Probing an account on demand: `account probe NAME`, the dashboard's
// probe button, and `account replace`, which brings a blacklisted account
// back when its new credentials work.

// accountNameRule answers 400, saying the rule, for an account name in an
// admin path that no account can have (every /accounts/:name route).
func accountNameRule(c *gin.Context) {
	if name, ok := c.Params.Get("name"); ok {
		if err := accounts.CheckName(name); err != nil {
			adminErr(c, http.StatusBadRequest, err.Error())
			c.Abort()
		}
	}
}

// ProbeView is one on-demand probe as the admin API answers it.
type ProbeView struct {
	OK        bool      `json:"ok"`
	Status    int       `json:"status"`
	LatencyMS int64     `json:"latency_ms"`
	ErrorType string    `json:"error_type,omitempty"`
	Message   string    `json:"message,omitempty"`
	At        time.Time `json:"at"`
}

// probeRecorder keeps a probe's result for `pool` (accounts.Pool).
type probeRecorder interface {
	RecordProbe(ctx context.Context, account string, r accounts.ProbeResult) error
}

// probeAccount sends one count_tokens now with the account's credential
// as Redis holds it (a refresh may be ahead of the file).
func (s *Server) probeAccount(ctx context.Context, name string) (ProbeView, error) {
	a, err := s.d.Accounts.Get(ctx, name)
	if err != nil {
		return ProbeView{}, err
	}
	hc := &http.Client{Transport: s.cfg.Transport} // probe.Check follows no redirect
	r := probe.Check(ctx, hc, s.cfg.UpstreamURL, a)
	v := ProbeView{OK: r.OK(), Status: r.Status, LatencyMS: r.Latency.Milliseconds(), ErrorType: r.ErrorType,
		Message: r.Message, At: s.d.Clock.Now().UTC()}
	if rec, ok := s.d.Pool.(probeRecorder); ok {
		result := r.ErrorType // as the recovery probes record it
		if r.Status != 0 {
			result = strconv.Itoa(r.Status)
		}
		if err := rec.RecordProbe(ctx, name, accounts.ProbeResult{At: v.At, Result: result}); err != nil {
			s.log.WithError(err).Warn("could not record the probe")
		}
	}
	s.log.WithField("account", name).Infof("probe of %s: status %d, %d ms %s", name, v.Status, v.LatencyMS, v.ErrorType)
	return v, nil
}

// adminProbeAccount: POST /admin/api/accounts/:name/probe.
func (s *Server) adminProbeAccount(c *gin.Context) {
	name := c.Param("name") // checked by accountNameRule
	v, err := s.probeAccount(c.Request.Context(), name)
	if err != nil {
		adminErr(c, http.StatusNotFound, "no account "+strqt(name)+" in the pool (sync after adding its file)")
		return
	}
	c.JSON(http.StatusOK, gin.H{"account": name, "probe": v})
}

// recoverIfWorking probes an account whose credentials were just replaced
// and, when they work, takes it off the blacklist (a disabled account
// stays disabled: only enable ends that) with its refresh state afresh.
func (s *Server) recoverIfWorking(ctx context.Context, d *AccountDetail) {
	v, err := s.probeAccount(ctx, d.Name)
	if err != nil {
		return // not synced yet: the recovery probes take it from here
	}
	d.Probe = &v
	if !v.OK {
		return
	}
	was, err := s.d.Pool.Recover(ctx, d.Name)
	if err != nil {
		if !errors.Is(err, accounts.ErrDisabled) {
			s.log.WithError(err).WithField("account", d.Name).Warn("new credentials work, but the blacklist entry could not be removed")
		}
		return
	}
	if !was {
		return
	}
	d.Recovered = true
	s.log.WithField("account", d.Name).Infof("account %s back in service: its new credentials work", d.Name)
	if s.d.Refresher != nil {
		if err := s.d.Refresher.Forget(ctx, d.Name); err != nil {
			s.log.WithError(err).Warn("could not reset the refresh state")
		}
		if err := s.d.Refresher.Replan(ctx); err != nil {
			s.log.WithError(err).Warn("could not re-plan refreshes")
		}
	}
}
