package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/claude-route/claude-route/login"
	"github.com/claude-route/claude-route/server"
)

// accountLogin runs `account login`: the proxy makes the sign-in URL, the
// operator opens it, signs in and pastes back the code the page shows
// (CODE#STATE) on standard input; the proxy exchanges it and writes the
// account. A refused code can be pasted again while the login lasts.
func accountLogin(ctx context.Context, ac *adminClient, tier, name string, in io.Reader, out io.Writer, asJSON bool) error {
	var st login.Started
	if err := ac.do(ctx, http.MethodPost, "/admin/api/account-logins", map[string]string{"tier": tier, "name": name}, &st); err != nil {
		return err
	}
	fmt.Fprintf(out, "Open this URL in a browser, sign in with the subscription account for %s (tier %s):\n\n  %s\n\n", name, tier, st.AuthorizeURL)
	fmt.Fprintf(out, "Then paste the code the page shows (CODE#STATE) and press Enter. The login lasts until %s.\n", st.ExpiresAt.Format("15:04:05 MST"))
	lines := bufio.NewScanner(in)
	for {
		fmt.Fprint(out, "code: ")
		if !lines.Scan() {
			if err := lines.Err(); err != nil {
				return err
			}
			return errors.New("no code pasted; nothing was written")
		}
		pasted := strings.TrimSpace(lines.Text())
		if pasted == "" {
			continue
		}
		var res struct {
			Account server.AccountDetail `json:"account"`
		}
		err := ac.do(ctx, http.MethodPost, "/admin/api/account-logins/finish", map[string]string{"login": st.ID, "code": pasted}, &res)
		if err != nil && retryable(err.Error()) {
			fmt.Fprintln(out, "error: "+err.Error()+". Paste the code again, or Ctrl-C.")
			continue
		}
		if err != nil {
			return err
		}
		printAccount(out, res.Account, asJSON)
		if res.Account.Sync != "" && !asJSON {
			fmt.Fprintln(out, res.Account.Sync)
		}
		return nil
	}
}

// retryable: the proxy refused the pasted code but the login is still
// open (a mistyped or wrong paste), so another paste may work.
func retryable(msg string) bool {
	for _, open := range []error{login.ErrBadCode, login.ErrStateMismatch, login.ErrCodeRefused} {
		if strings.Contains(msg, open.Error()) {
			return true
		}
	}
	return false
}
