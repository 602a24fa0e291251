package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/claude-route/claude-route/accounts"
)

// lateBindPool is a Pool whose BindTo runs in the store but whose answer
// is lost, as when the reply comes after the client's read timeout.
type lateBindPool struct{ Pool }

var errLateBind = errors.New("i/o timeout (the store answered late)")

func (p lateBindPool) BindTo(ctx context.Context, keyHash, tier string, slots int, account string) (accounts.Binding, error) {
	if _, err := p.Pool.BindTo(ctx, keyHash, tier, slots, account); err != nil {
		return accounts.Binding{}, err
	}
	return accounts.Binding{}, fmt.Errorf("bind: %w", errLateBind)
}

// A key issued onto a named account whose bind answer is lost: the issue
// is refused with 503 (the store failed; nothing conflicts, so retry),
// not 409, and the slot the bind took goes back with the key instead of
// staying with a revoked key until the next sync.
func TestIssueOntoAnAccountWithALostBindAnswer(t *testing.T) {
	e := newEnv(t, withDeps(func(d *Deps) { d.Pool = lateBindPool{d.Pool} }))
	e.apiAccount("supreme", "s1")
	e.start()
	var out struct {
		Key   string
		Error struct{ Message string }
	}
	st := e.admin(http.MethodPost, "/admin/api/keys", map[string]string{"tier": "supreme", "account": "s1"}, &out)
	if st != http.StatusServiceUnavailable || out.Key != "" {
		t.Fatalf("issue: %d %q, want 503 and no key", st, out.Error.Message)
	}
	if n := e.slotsUsed("s1"); n != 0 {
		t.Fatalf("s1 has %d slots used after the refused issue, want 0", n)
	}
}
