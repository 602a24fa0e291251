package admission

import (
	"fmt"
	"time"

	"github.com/claude-route/claude-route/ratelimit"
	"github.com/claude-route/claude-route/tiers"
)

// Kind is why a request was refused; the server words each in the
// contract's shape (status, error type).
type Kind int

const (
	// Unauthorized: no key, a malformed, unknown, revoked or expired one,
	// or one whose tier is no longer offered (401).
	Unauthorized Kind = iota + 1
	// ModelRefused: the key's tier does not offer the body's model (403).
	ModelRefused
	// TooMany: the key's concurrency queue is full or its wait ran out,
	// or its count_tokens bucket is empty (429, retry in a second).
	TooMany
	// QuotaUsed: the key's window for the family is full (429, no retry).
	QuotaUsed
	// BudgetSpent: the key's day or week budget is spent (429, no retry).
	BudgetSpent
	// PoolFull and PoolEmpty: the tier has no account with room, or none
	// at all, to bind the key to (503 overloaded).
	PoolFull
	PoolEmpty
	// StoreDown: the store did not answer within the budget (503).
	StoreDown
	// ClientGone: the client left while the request waited (nginx's 499).
	ClientGone
	// BodyRefused: the body reader's own refusal, its error in Cause.
	BodyRefused
)

// Refusal is the admission's one error: the request was not admitted,
// and everything the admission took for it is given back already.
type Refusal struct {
	Kind Kind
	// Msg is written for the customer.
	Msg        string
	RetryAfter time.Duration
	// NoRetry: waiting a moment cannot help (a quota or budget used up).
	NoRetry bool
	// Unread: refused before the body was read (the server drains it).
	Unread bool
	// Caller is the key's scope; nil when the key itself was refused.
	Caller *Caller
	// Family and Model are the body's, when it was read.
	Family, Model string
	// Quota is the key's window as the refusal left it (the x-ratelimit-*
	// headers); nil when no place was asked for.
	Quota *ratelimit.Result
	Cause error
}

func (r *Refusal) Error() string {
	if r.Cause != nil {
		return r.Msg + ": " + r.Cause.Error()
	}
	return r.Msg
}

func (r *Refusal) Unwrap() error { return r.Cause }

func refuse(k Kind, msg string) *Refusal { return &Refusal{Kind: k, Msg: msg} }

func storeDown(err error) *Refusal {
	return &Refusal{Kind: StoreDown, Msg: "Service temporarily unavailable, please retry", Cause: err}
}

func unauthorized(msg string) *Refusal { return refuse(Unauthorized, msg) }

// ModelRefusal words a tier's model refusal. It keeps its start ("Trial
// tier can only use Sonnet models": clients and scripts match on it) and
// names the fix, because Claude Code shows a 403 as "Failed to
// authenticate" and this message is all the customer sees.
func ModelRefusal(tr *tiers.Tier) string {
	msg := fmt.Sprintf("%s tier can only use %s models", tr.Title(), tr.AllowedText())
	if alias := permittedAlias(tr); alias != "" {
		msg += fmt.Sprintf(". Pick a permitted model: set ANTHROPIC_MODEL=%s, or pass --model %s in Claude Code", alias, alias)
	}
	return msg
}

// permittedAlias is a model alias Claude Code understands that the tier
// allows: sonnet when it may, else its first named family.
func permittedAlias(tr *tiers.Tier) string {
	if tr.Allows("sonnet") {
		return "sonnet"
	}
	for _, f := range []string{"opus", "haiku"} {
		if tr.Allows(f) {
			return f
		}
	}
	return ""
}
