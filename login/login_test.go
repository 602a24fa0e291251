package login

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/claude-route/claude-route/internal/fakeupstream"
	"github.com/claude-route/claude-route/internal/testenv"
)

// signIn opens the authorize URL as an operator would and returns what
// the callback page shows (CODE#STATE).
func signIn(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`<code id="code">([^<]+)</code>`).FindSubmatch(b)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("sign-in page: %d %s", resp.StatusCode, b)
	}
	return string(m[1])
}

func newFlow(t *testing.T) (*Flow, *fakeupstream.Server) {
	fake := fakeupstream.Start(fakeupstream.Options{})
	t.Cleanup(fake.Close)
	return New(testenv.Redis(t, 15), Config{AuthorizeURL: fake.AuthorizeURL(), TokenURL: fake.TokenURL(),
		ClientID: fakeupstream.ClientID, RedirectURI: "https://example.invalid/oauth/code/callback"}), fake
}

// A good code gives tokens the upstream accepts, once; every way a code
// can be wrong gets its own clear error, and no tokens.
func TestLoginAgainstTheFake(t *testing.T) {
	ctx := context.Background()
	f, fake := newFlow(t)
	st, err := f.Start(ctx, "high", "o9")
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.Parse(st.AuthorizeURL)
	if v := q.Query(); v.Get("code_challenge") == "" || v.Get("code_challenge_method") != "S256" || v.Get("state") != st.ID || v.Get("client_id") != fakeupstream.ClientID {
		t.Fatalf("authorize URL lacks PKCE or state: %s", st.AuthorizeURL)
	}
	if strings.Contains(st.AuthorizeURL, "verifier") {
		t.Fatalf("the verifier leaked into the URL: %s", st.AuthorizeURL)
	}
	pasted := signIn(t, st.AuthorizeURL)
	code, _, _ := strings.Cut(pasted, "#")

	// Refusals first, each leaving the login open.
	for _, c := range []struct {
		name, id, pasted string
		want             error
	}{
		{"no state", st.ID, code, ErrBadCode},
		{"state of another sign-in", st.ID, code + "#other-state", ErrStateMismatch},
		{"wrong code", st.ID, "not-the-code#" + st.ID, ErrCodeRefused},
		{"unknown login", "nope", code + "#nope", ErrNoLogin},
	} {
		if _, tok, err := f.Finish(ctx, c.id, c.pasted); !errors.Is(err, c.want) || tok.AccessToken != "" {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	got, tok, err := f.Finish(ctx, st.ID, "  "+pasted+"\n")
	if err != nil || got.Tier != "high" || got.Name != "o9" || !strings.HasPrefix(tok.AccessToken, "sk-ant-oat01-") || tok.RefreshToken == "" || tok.ExpiresAt.IsZero() {
		t.Fatalf("good code: %+v %v", got, err)
	}
	if !fake.AccessValid(tok.AccessToken) {
		t.Fatal("the upstream does not accept the new access token")
	}
	// Reused: the login is over, and the code is spent at the endpoint too.
	if _, _, err := f.Finish(ctx, st.ID, pasted); !errors.Is(err, ErrNoLogin) {
		t.Fatalf("reused code: %v, want ErrNoLogin", err)
	}
	st2, _ := f.Start(ctx, "high", "o10")
	if _, _, err := f.Finish(ctx, st2.ID, code+"#"+st2.ID); !errors.Is(err, ErrCodeRefused) {
		t.Fatalf("a spent code on another login: %v, want ErrCodeRefused", err)
	}
	// Expired.
	st3, _ := f.Start(ctx, "high", "o11")
	pasted3 := signIn(t, st3.AuthorizeURL)
	fake.ExpireCodes()
	if _, _, err := f.Finish(ctx, st3.ID, pasted3); !errors.Is(err, ErrCodeRefused) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired code: %v", err)
	}
}

// The PKCE verifier is checked: a code exchanged with another login's
// verifier is refused.
func TestLoginVerifierChecked(t *testing.T) {
	ctx := context.Background()
	f, _ := newFlow(t)
	a, _ := f.Start(ctx, "high", "a")
	b, _ := f.Start(ctx, "high", "b")
	codeA, _, _ := strings.Cut(signIn(t, a.AuthorizeURL), "#")
	// Swap the verifiers in the store: b's verifier with a's code and state.
	va, _ := f.rdb.Get(ctx, keyPrefix+a.ID).Result()
	vb, _ := f.rdb.Get(ctx, keyPrefix+b.ID).Result()
	f.rdb.Set(ctx, keyPrefix+a.ID, vb, 0)
	_ = va
	if _, _, err := f.Finish(ctx, a.ID, codeA+"#"+a.ID); !errors.Is(err, ErrCodeRefused) || !strings.Contains(err.Error(), "verifier") {
		t.Fatalf("wrong verifier: %v", err)
	}
}

func TestFileIsTheCredentialsFormat(t *testing.T) {
	b := string(File(Tokens{AccessToken: "sk-ant-oat01-x"}))
	if b != `{"claudeAiOauth":{"accessToken":"sk-ant-oat01-x"}}` {
		t.Fatalf("setup token file: %s", b)
	}
}
