package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/claude-route/claude-route/admission"
	"github.com/claude-route/claude-route/keys"
)

// caller is the typed scope of an authenticated customer request
// (admission.Caller), passed explicitly instead of stored in gin's
// untyped context bag.
type caller = admission.Caller

// httpError is a refusal in the contract's shape.
type httpError struct {
	status     int
	typ, msg   string
	retryAfter time.Duration
	// noRetry marks a refusal that waiting a moment cannot fix (a quota or
	// budget used up): it answers x-should-retry: false, so the Anthropic
	// and OpenAI SDKs raise at once instead of sleeping a retry-after of
	// hours.
	noRetry bool
	cause   error
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.cause }

func (e *httpError) write(w http.ResponseWriter) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(ceilSeconds(e.retryAfter)))
	}
	if e.noRetry {
		w.Header().Set("X-Should-Retry", "false")
	}
	writeError(w, e.status, e.typ, e.msg)
}

func ceilSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func storeDown(err error) *httpError {
	return &httpError{status: http.StatusServiceUnavailable, typ: errAPI,
		msg: "Service temporarily unavailable, please retry", cause: err}
}

func unauthorized(msg string) *httpError {
	return &httpError{status: http.StatusUnauthorized, typ: errAuthentication, msg: msg}
}

// clientKey takes the customer's key from x-api-key or Authorization:
// Bearer (keys.FromHeaders documents which wins when both are sent).
func clientKey(h http.Header) string {
	k, _ := keys.FromHeaders(h)
	return strings.TrimSpace(k)
}

func logFields(cl *caller) map[string]any {
	return map[string]any{"key": cl.Rec.ID, "tier": cl.Tier.Name}
}

// requireCaller checks the key of a customer's own view (no concurrency
// place, no body) and answers a refusal itself.
func (s *Server) requireCaller(w http.ResponseWriter, r *http.Request) *caller {
	cl, err := s.gate.Caller(r.Context(), clientKey(r.Header))
	if err != nil {
		herr := s.refusal(err)
		s.logRefusal(nil, r.Header, "", herr)
		herr.write(w)
		return nil
	}
	return cl
}

// customerUsage shows the key its own tier, expiry, account alias and quotas.
func (s *Server) customerUsage(c *ginContext) {
	ctx := c.Request.Context()
	cl := s.requireCaller(c.Writer, c.Request)
	if cl == nil {
		return
	}
	table := s.d.Tiers.Load() // one table for the whole view
	fams := map[string]any{}
	for _, f := range table.Families {
		if !cl.Tier.Allows(f.Name) {
			continue
		}
		limit, ok := cl.Tier.Quota(f.Name)
		if !ok {
			fams[f.Name] = map[string]any{"used": nil, "limit": nil, "unlimited": true}
			continue
		}
		res, err := s.d.Limiter.Peek(ctx, s.quotaRequest(cl, f.Name, limit))
		if err != nil {
			storeDown(err).write(c.Writer)
			return
		}
		fams[f.Name] = map[string]any{"used": res.Count, "limit": limit, "remaining": res.Remaining,
			"reset": res.Reset.UTC().Format(time.RFC3339)}
	}
	out := map[string]any{
		"id": cl.Rec.ID, "tier": cl.Tier.Name, "status": cl.Rec.Status,
		"created_at": cl.Rec.Created.UTC().Format(time.RFC3339),
		"expires_at": nil, "account": nilIfEmpty(cl.Account),
		"window_seconds": int64(time.Duration(table.Window) / time.Second), "families": fams,
	}
	if !cl.Rec.Expires.IsZero() {
		out["expires_at"] = cl.Rec.Expires.UTC().Format(time.RFC3339)
	}
	// A key sold from stock waits for its first successful request to start
	// its validity: "not activated", no expires_at yet.
	out["activated"] = !cl.Rec.NotActivated()
	if bv, err := s.budgetViews(ctx, cl.Rec, cl.Tier); err != nil {
		storeDown(err).write(c.Writer)
		return
	} else if bv != nil {
		out["budgets"] = bv
	}
	if cl.Rec.NotActivated() {
		out["validity_seconds"] = int64(cl.Rec.FirstUse / time.Second)
	}
	if s.d.Usage != nil {
		if sum, err := s.d.Usage.Key(ctx, cl.Hash); err == nil {
			out["tokens"] = sum
			out["cost_usd"] = s.costOf(sum)
		}
		if n, asked := daysAsked(c.Query("days")); asked {
			days, err := s.customerDays(ctx, cl.Hash, n)
			if err != nil {
				storeDown(err).write(c.Writer)
				return
			}
			out["days"] = days
		}
	}
	c.JSON(http.StatusOK, out)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
