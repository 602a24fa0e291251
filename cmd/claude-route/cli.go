package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/claude-route/claude-route/keys"
	"github.com/claude-route/claude-route/server"
)

// adminClient calls the running server's admin API: operator commands work
// the same with the embedded store and with a shared Redis.
type adminClient struct {
	base, token string
	http        *http.Client
}

func newAdminClient(getenv func(string) string) (*adminClient, error) {
	base := strings.TrimRight(env(getenv, "CLAUDE_ROUTE_URL", "http://127.0.0.1:8080"), "/")
	if _, err := url.Parse(base); err != nil {
		return nil, &configError{"CLAUDE_ROUTE_URL", err}
	}
	tok := getenv("ADMIN_TOKEN")
	if tok == "" {
		return nil, &configError{"ADMIN_TOKEN", fmt.Errorf("operator commands need the server's admin token")}
	}
	return &adminClient{base: base, token: tok, http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

func (a *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the server at %s (is it running? CLAUDE_ROUTE_URL): %w", a.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s", e.Error.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// stream is do for a long answer: fn reads the body as it arrives (no
// size limit, nothing held whole). Errors are read as do reads them.
func (a *adminClient) stream(ctx context.Context, path string, fn func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the server at %s (is it running? CLAUDE_ROUTE_URL): %w", a.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s", e.Error.Message)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	return fn(resp.Body)
}

// keyRef turns what the operator typed into a reference safe for a URL: a
// full key becomes its id, so the secret never travels in a path or a log.
func keyRef(s string) string {
	if keys.CheckFormat(s) == nil {
		return keys.ID(keys.Hash(s))
	}
	return s
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

// keyExpiry is a key's expiry for people: its date, "-" for never, or
// "not activated (720h0m0s from first use)" for a key sold from stock.
func keyExpiry(k server.KeyView) string {
	if k.NotActivated {
		return "not activated (valid " + validityText(k.FirstUseValiditySeconds) + " from first use)"
	}
	return fmtTime(k.ExpiresAt)
}

// validityText is a validity in days when it is whole days, else hours.
func validityText(sec int64) string {
	if sec%86400 == 0 {
		if sec == 86400 {
			return "1 day"
		}
		return strconv.FormatInt(sec/86400, 10) + " days"
	}
	return (time.Duration(sec) * time.Second).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// listKeys pages through GET /admin/api/keys (1,000 a page) until the
// last page or max keys (0: all).
func listKeys(ctx context.Context, ac *adminClient, q url.Values, max int) ([]server.KeyView, error) {
	var all []server.KeyView
	for {
		page := 1000
		if max > 0 {
			page = min(page, max-len(all))
		}
		q.Set("limit", strconv.Itoa(page))
		var res struct {
			Keys       []server.KeyView `json:"keys"`
			NextCursor *string          `json:"next_cursor"`
		}
		if err := ac.do(ctx, http.MethodGet, "/admin/api/keys?"+q.Encode(), nil, &res); err != nil {
			return all, err
		}
		all = append(all, res.Keys...)
		if res.NextCursor == nil || (max > 0 && len(all) >= max) {
			return all, nil
		}
		q.Set("cursor", *res.NextCursor)
	}
}

func cmdOperator(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer) error {
	cmd := args[0]
	if cmd == "key" {
		if len(args) < 2 {
			return &usageError{"key needs a verb: issue, list, show or revoke"}
		}
		cmd = "key " + args[1]
		args = args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tier := fs.String("tier", "", "tier")
	account := fs.String("account", "", "account name")
	note := fs.String("note", "", "note")
	fromFirstUse := fs.Bool("from-first-use", false, "validity starts at the first request")
	strict := fs.Bool("strict", false, "refuse a key the tier has no free slot for")
	budgets := budgetFlags(fs)
	status := fs.String("status", "", "status filter")
	reason := fs.String("reason", "", "reason")
	asJSON := fs.Bool("json", false, "print JSON")
	search := fs.String("search", "", "substring of id, prefix, note or account")
	limit := fs.Int("limit", 0, "at most this many keys (0: all)")
	if err := fs.Parse(reorder(args[1:])); err != nil {
		return &usageError{cmd + ": " + err.Error()}
	}
	pos := fs.Args()
	need := func(n int, what string) error {
		if len(pos) != n {
			return &usageError{fmt.Sprintf("%s needs %s", cmd, what)}
		}
		return nil
	}
	ac, err := newAdminClient(getenv)
	if err != nil {
		return err
	}
	switch cmd {
	case "key issue":
		if *tier == "" {
			return &usageError{"key issue needs --tier"}
		}
		var res struct {
			Key     string         `json:"key"`
			Record  server.KeyView `json:"record"`
			Warning string         `json:"warning"`
		}
		body := map[string]any{"tier": *tier, "account": *account, "note": *note, "strict": *strict}
		if *fromFirstUse {
			body["from_first_use"] = true // absent: the tier's validity_from
		}
		budgets.addTo(body)
		if err := ac.do(ctx, http.MethodPost, "/admin/api/keys", body, &res); err != nil {
			return err
		}
		if res.Warning != "" {
			fmt.Fprintln(errOut, "warning: "+res.Warning)
		}
		fmt.Fprintln(out, res.Key)
		fmt.Fprintf(out, "id %s, tier %s, expires %s, account %s\n", res.Record.ID, res.Record.Tier, keyExpiry(res.Record), dash(res.Record.Account))
		return nil
	case "key list":
		q := url.Values{}
		for k, v := range map[string]string{"tier": *tier, "status": *status, "account": *account, "q": *search} {
			if v != "" {
				q.Set(k, v)
			}
		}
		list, err := listKeys(ctx, ac, q, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(map[string]any{"keys": list})
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPREFIX\tTIER\tSTATUS\tACCOUNT\tCREATED\tEXPIRES\tNOTE")
		for _, k := range list {
			c := k.CreatedAt
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Tier, k.Status, dash(k.Account), fmtTime(&c), keyExpiry(k), k.Note)
		}
		return tw.Flush()
	case "key show", "key revoke":
		if err := need(1, "a key or key id"); err != nil {
			return err
		}
		var res map[string]json.RawMessage
		path := "/admin/api/keys/" + url.PathEscape(keyRef(pos[0]))
		method := http.MethodGet
		if cmd == "key revoke" {
			method = http.MethodDelete
		}
		if err := ac.do(ctx, method, path, nil, &res); err != nil {
			return err
		}
		if cmd == "key revoke" {
			var k server.KeyView
			_ = json.Unmarshal(res["key"], &k)
			fmt.Fprintf(out, "revoked %s (%s, tier %s)\n", k.ID, k.Prefix, k.Tier)
			return nil
		}
		if *asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		return printKeyShow(out, res)
	case "pool":
		return cmdPool(ctx, ac, *tier, *asJSON, out)
	case "recover":
		if err := need(1, "an account name"); err != nil {
			return err
		}
		var res struct {
			Was bool `json:"was_blacklisted"`
		}
		if err := ac.do(ctx, http.MethodPost, "/admin/api/accounts/"+url.PathEscape(pos[0])+"/recover", nil, &res); err != nil {
			return err
		}
		if res.Was {
			fmt.Fprintf(out, "%s is off the blacklist\n", pos[0])
		} else {
			fmt.Fprintf(out, "%s was not blacklisted\n", pos[0])
		}
		return nil
	case "blacklist":
		if err := need(1, "an account name"); err != nil {
			return err
		}
		if err := ac.do(ctx, http.MethodPost, "/admin/api/accounts/"+url.PathEscape(pos[0])+"/blacklist", map[string]string{"reason": *reason}, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s is blacklisted\n", pos[0])
		return nil
	case "sync":
		var res struct {
			Summary string          `json:"summary"`
			Report  json.RawMessage `json:"report"`
		}
		if err := ac.do(ctx, http.MethodPost, "/admin/api/sync", nil, &res); err != nil {
			return err
		}
		if *asJSON {
			_, err := fmt.Fprintln(out, string(res.Report))
			return err
		}
		fmt.Fprintln(out, res.Summary)
		return nil
	case "status":
		return cmdStatus(ctx, ac, *asJSON, out)
	}
	return &usageError{"unknown command " + cmd}
}

// reorder lets flags follow positional arguments ("recover NAME --json").
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && a != "--json" && a != "-json" && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

func cmdPool(ctx context.Context, ac *adminClient, tier string, asJSON bool, out io.Writer) error {
	var res struct {
		Tiers []server.PoolTier `json:"tiers"`
	}
	q := ""
	if tier != "" {
		q = "?tier=" + url.QueryEscape(tier)
	}
	var raw json.RawMessage
	if err := ac.do(ctx, http.MethodGet, "/admin/api/pool"+q, nil, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := fmt.Fprintln(out, string(raw))
		return err
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, t := range res.Tiers {
		fmt.Fprintf(tw, "%s\t%d slots per account\t%s\t%s\n", strings.ToUpper(t.Tier), t.SlotsPerAccount, slotsLine(t.SlotsUsed, t.SlotsTotal), stockLine(t))
		if len(t.Accounts) == 0 {
			fmt.Fprintln(tw, "  (no accounts)")
		}
		for _, a := range t.Accounts {
			state := "ok"
			if a.Blacklist != nil {
				state = fmt.Sprintf("BLACKLISTED since %s: %s", fmtTime(&a.Blacklist.Since), a.Blacklist.Reason)
			} else if a.LimitedTill != nil {
				state = "limited until " + fmtTime(a.LimitedTill)
			}
			refresh := ""
			if a.RefreshAttempts > 0 || a.LastRefreshErr != "" {
				refresh = fmt.Sprintf("refresh failures %d/3: %s", a.RefreshAttempts, a.LastRefreshErr)
			}
			fmt.Fprintf(tw, "  %s\t%s\tslots %d/%d\tkeys %d\t%s\t%s\t%s\n", a.Name, dash(a.Kind), a.SlotsUsed, a.SlotsTotal, a.BoundKeys, state, capacityText(a), refresh)
		}
	}
	return tw.Flush()
}

// stockLine is a tier's sold keys against its slots: every unbound key
// needs a free slot at its first request.
func stockLine(t server.PoolTier) string {
	s := fmt.Sprintf("sold %d keys (%d not bound yet), %d free slots", t.SoldKeys, t.UnboundKeys, t.FreeSlots)
	if t.UnboundKeys > t.FreeSlots {
		s += " OVERSOLD"
	}
	return s
}

func cmdStatus(ctx context.Context, ac *adminClient, asJSON bool, out io.Writer) error {
	var raw json.RawMessage
	if err := ac.do(ctx, http.MethodGet, "/admin/api/status", nil, &raw); err != nil {
		return err
	}
	if asJSON {
		_, err := fmt.Fprintln(out, string(raw))
		return err
	}
	var res struct {
		Store struct {
			OK bool `json:"ok"`
		} `json:"store"`
		Accounts []server.AccountView `json:"accounts"`
		LastSync *struct {
			Summary string `json:"summary"`
			Report  struct {
				StartedAt time.Time `json:"started_at"`
			} `json:"report"`
		} `json:"last_sync"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	store := "up"
	if !res.Store.OK {
		store = "DOWN"
	}
	fmt.Fprintf(out, "store: %s\n", store)
	if res.LastSync != nil {
		fmt.Fprintf(out, "last sync: %s — %s\n", fmtTime(&res.LastSync.Report.StartedAt), res.LastSync.Summary)
	} else {
		fmt.Fprintln(out, "last sync: never")
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tTIER\tKIND\tSTATE\tEXPIRES\tNEXT REFRESH\tATTEMPTS 24H\tCOOLDOWN UNTIL\tLAST ERROR")
	for _, a := range res.Accounts {
		state := "ok"
		if a.Blacklist != nil {
			state = "blacklisted"
		} else if a.LimitedTill != nil {
			state = "limited"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.Name, a.Tier, dash(a.Kind), state,
			fmtTime(a.ExpiresAt), fmtTime(a.NextRefresh), a.RefreshAttempts, fmtTime(a.CooldownUntil), dash(a.LastRefreshErr))
	}
	return tw.Flush()
}
