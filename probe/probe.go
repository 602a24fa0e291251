// Package probe brings back accounts the upstream rejected once their
// credential works again: every Interval, each account blacklisted for a
// credential rejection gets one POST /v1/messages/count_tokens (which costs
// no usage), by exactly one replica. On 200 the account leaves the
// blacklist and its refresh attempts start over; on anything else the
// probe's time and result are kept for `pool`.
package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/clock"
)

// Pool is the pool state the prober reads and changes.
type Pool interface {
	Blacklisted(ctx context.Context) (map[string]accounts.BlacklistEntry, error)
	ClaimProbe(ctx context.Context, account string, interval time.Duration) (bool, error)
	RecordProbe(ctx context.Context, account string, r accounts.ProbeResult) error
	Recover(ctx context.Context, account string) (bool, error)
}

// Accounts reads credentials.
type Accounts interface {
	Get(ctx context.Context, name string) (accounts.Account, error)
}

// Prober runs the probes.
type Prober struct {
	Pool        Pool
	Accounts    Accounts
	HTTP        *http.Client
	UpstreamURL string // for accounts without their own base URL
	Interval    time.Duration
	Clock       clock.Clock
	Log         logrus.FieldLogger
	// OnRecover is called for each recovered account (refresh reset, metric).
	OnRecover func(ctx context.Context, account string)
	// OnResult counts each probe's result ("recovered", a status, or a
	// failure kind) for /metrics.
	OnResult func(result string)
}

const oauthBeta = "oauth-2025-04-20"

var probeBody = []byte(`{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"ping"}]}`)

// Once probes every eligible account this replica wins the claim for and
// returns the recovered ones.
func (p *Prober) Once(ctx context.Context) ([]string, error) {
	bl, err := p.Pool.Blacklisted(ctx)
	if err != nil {
		return nil, err
	}
	var recovered []string
	for name, e := range bl {
		if !accounts.Probeable(e.Reason) {
			continue
		}
		ok, err := p.Pool.ClaimProbe(ctx, name, p.Interval)
		if err != nil || !ok {
			continue
		}
		acct, err := p.Accounts.Get(ctx, name)
		if err != nil {
			continue
		}
		result := p.call(ctx, acct)
		if result == "200" {
			if _, err := p.Pool.Recover(ctx, name); err != nil {
				return recovered, err
			}
			result = "recovered"
			recovered = append(recovered, name)
			p.Log.WithField("account", name).Infof("recovery probe of %s answered 200: back in service", name)
			if p.OnRecover != nil {
				p.OnRecover(ctx, name)
			}
		}
		_ = p.Pool.RecordProbe(ctx, name, accounts.ProbeResult{At: p.Clock.Now().UTC(), Result: result})
		if p.OnResult != nil {
			p.OnResult(result)
		}
	}
	return recovered, nil
}

// call makes the probe request and returns the status, or the failure kind.
func (p *Prober) call(ctx context.Context, a accounts.Account) string {
	r := Check(ctx, p.HTTP, p.UpstreamURL, a)
	if r.Status == 0 {
		return r.ErrorType
	}
	return strconv.Itoa(r.Status)
}

// Result is what one probe found: never the credential, nor the error
// text of a failed connection (it may carry the URL).
type Result struct {
	// Status is the upstream's HTTP status; 0 when there was no answer.
	Status int `json:"status"`
	// Latency is the time to the answer's headers.
	Latency time.Duration `json:"-"`
	// ErrorType is the upstream's error.type ("authentication_error",
	// "rate_limit_error", …), or, with no answer, "unreachable" or
	// "bad upstream URL".
	ErrorType string `json:"error_type,omitempty"`
	// Message is the upstream's error.message, cut to 200 bytes.
	Message string `json:"message,omitempty"`
}

// OK reports whether the credential works.
func (r Result) OK() bool { return r.Status == http.StatusOK }

// Check sends one POST /v1/messages/count_tokens (which costs no usage)
// with a's credential, to a's first base URL or defaultURL, and says what
// came back.
func Check(ctx context.Context, hc *http.Client, defaultURL string, a accounts.Account) Result {
	base := defaultURL
	if len(a.BaseURLs) > 0 {
		base = a.BaseURLs[0]
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, strings.TrimRight(base, "/")+"/v1/messages/count_tokens", bytes.NewReader(probeBody))
	if err != nil {
		return Result{ErrorType: "bad upstream URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	if a.Kind == accounts.OAuth {
		req.Header.Set("Authorization", "Bearer "+a.AccessToken)
		req.Header.Set("Anthropic-Beta", oauthBeta)
	} else {
		req.Header.Set("X-Api-Key", a.APIKey)
	}
	// Never a redirect: it would carry the credential to whatever host it
	// names (the recovery probes' client follows them by default).
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	start := time.Now() // a measurement, not a time window: the wall clock
	resp, err := noRedirect.Do(req)
	if err != nil {
		return Result{Latency: time.Since(start), ErrorType: "unreachable"}
	}
	defer resp.Body.Close()
	r := Result{Status: resp.StatusCode, Latency: time.Since(start)}
	if r.OK() {
		return r
	}
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 16<<10)).Decode(&e) == nil {
		// A relay might echo what it was sent: never pass the credential on.
		r.ErrorType, r.Message = e.Error.Type, strings.ReplaceAll(e.Error.Message, a.Credential(), "[credential]")
		if len(r.Message) > 200 {
			r.Message = r.Message[:200]
		}
	}
	return r
}

// Run probes every Interval until ctx ends; Interval 0 turns it off.
func (p *Prober) Run(ctx context.Context) {
	if p.Interval <= 0 {
		return
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := p.Once(ctx); err != nil && ctx.Err() == nil {
			p.Log.WithError(err).Warn(fmt.Sprintf("recovery probes: %v", err))
		}
	}
}
