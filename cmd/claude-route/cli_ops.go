package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/internal/csvsafe"
	"github.com/claude-route/claude-route/server"
	"github.com/claude-route/claude-route/usage"
)

// The lifecycle verbs: key extend|renew|move|rebind|note, key issue
// --count/--csv, and account add|replace|show|disable|enable|delete|refresh.

const keyOpsUsage = `  claude-route key issue --tier T --count N [--note TEXT] [--from-first-use] [--budget-day-usd X] [--budget-week-usd Y] [--strict] [--csv]   N keys, one a line (--csv: id,key,tier,expires,note,first_use_validity_seconds)
  claude-route key extend KEY|ID --days N | --until YYYY-MM-DD
  claude-route key renew KEY|ID [--force]     a new validity period of its tier, from now (never shortens an expiry without --force)
  claude-route key move KEY|ID --tier T       same key, usage and windows; rebound in the new tier or nothing changes
  claude-route key rebind KEY|ID --account NAME
  claude-route key note KEY|ID TEXT
  claude-route key budget KEY|ID [--day-usd X] [--week-usd Y]   the key's own budgets over its tier's (0 or left out: the tier's)
`

const accountUsage = `  claude-route account add --tier T --name NAME < file.json    either credential shape; written to ACCOUNT_DIR/T/NAME.json (0600), synced
  claude-route account replace NAME < file.json                 new credentials, same account
  claude-route account show NAME [--json]                       kind, expiry and a fingerprint (never the secret)
  claude-route account disable|enable NAME                      takes no keys while disabled; its keys move
  claude-route account delete NAME                              file to ACCOUNT_DIR/.trash/, account leaves
  claude-route account refresh NAME                             refresh its OAuth token now
  claude-route account probe NAME                               one count_tokens now with its credential: status, latency, error type
  claude-route account login --tier T --name NAME               sign a subscription account in (OAuth, PKCE): open the URL, paste back CODE#STATE
`

// cmdKeyOps runs the key verbs this file owns; handled is false for the
// others (issue without --count, list, show, revoke).
func cmdKeyOps(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer) (handled bool, err error) {
	if len(args) < 2 || args[0] != "key" {
		return false, nil
	}
	verb := args[1]
	switch verb {
	case "extend", "renew", "move", "rebind", "note", "budget":
	case "issue":
		if !hasFlag(args[2:], "count") && !hasFlag(args[2:], "csv") {
			return false, nil
		}
	default:
		return false, nil
	}
	fs := flag.NewFlagSet("key "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	days := fs.Int("days", 0, "days to add to the current expiry")
	until := fs.String("until", "", "new expiry, YYYY-MM-DD or RFC 3339")
	tier := fs.String("tier", "", "tier")
	account := fs.String("account", "", "account name")
	count := fs.Int("count", 1, "how many keys")
	note := fs.String("note", "", "note")
	fromFirstUse := fs.Bool("from-first-use", false, "validity starts at the first request")
	strict := fs.Bool("strict", false, "refuse keys the tier has no free slots for")
	asCSV := fs.Bool("csv", false, "print CSV")
	asJSON := fs.Bool("json", false, "print JSON")
	force := fs.Bool("force", false, "renew even when it shortens the expiry")
	dayUSD := fs.Float64("day-usd", 0, "the key's own day budget in USD (0: the tier's)")
	weekUSD := fs.Float64("week-usd", 0, "the key's own week budget in USD (0: the tier's)")
	budgets := budgetFlags(fs)
	if err := fs.Parse(reorder(args[2:])); err != nil {
		return true, &usageError{"key " + verb + ": " + err.Error() + "\n" + keyOpsUsage}
	}
	pos := fs.Args()
	ac, err := newAdminClient(getenv)
	if err != nil {
		return true, err
	}
	if verb == "issue" {
		if *tier == "" {
			return true, &usageError{"key issue needs --tier"}
		}
		var res struct {
			Keys    []server.IssuedKey `json:"keys"`
			Warning string             `json:"warning"`
		}
		body := map[string]any{"tier": *tier, "count": *count, "note": *note, "strict": *strict}
		if *fromFirstUse {
			body["from_first_use"] = true // absent: the tier's validity_from
		}
		budgets.addTo(body)
		err := ac.do(ctx, http.MethodPost, "/admin/api/keys/batch", body, &res)
		if res.Warning != "" {
			fmt.Fprintln(errOut, "warning: "+res.Warning)
		}
		// Keys issued before a failure are printed all the same: they exist.
		printIssued(out, res.Keys, *asCSV, *asJSON)
		return true, err
	}
	if len(pos) < 1 {
		return true, &usageError{"key " + verb + " needs a key or key id"}
	}
	path := "/admin/api/keys/" + url.PathEscape(keyRef(pos[0])) + "/" + verb
	if verb == "budget" {
		path += "s"
	}
	var body any
	switch verb {
	case "extend":
		if (*days == 0) == (*until == "") {
			return true, &usageError{"key extend needs --days N or --until DATE"}
		}
		body = map[string]any{"days": *days, "until": *until}
	case "move":
		if *tier == "" {
			return true, &usageError{"key move needs --tier"}
		}
		body = map[string]string{"tier": *tier}
	case "rebind":
		if *account == "" {
			return true, &usageError{"key rebind needs --account"}
		}
		body = map[string]string{"account": *account}
	case "note":
		body = map[string]string{"note": strings.Join(pos[1:], " ")}
	case "renew":
		body = map[string]bool{"force": *force}
	case "budget":
		body = map[string]float64{"day_usd": *dayUSD, "week_usd": *weekUSD}
	}
	var res struct {
		Key server.KeyView `json:"key"`
	}
	if err := ac.do(ctx, http.MethodPost, path, body, &res); err != nil {
		return true, err
	}
	if *asJSON {
		return true, json.NewEncoder(out).Encode(res.Key)
	}
	k := res.Key
	fmt.Fprintf(out, "%s: tier %s, %s, expires %s, account %s, note %s", k.ID, k.Tier, k.Status, keyExpiry(k), dash(k.Account), dash(k.Note))
	if verb == "budget" {
		fmt.Fprintf(out, ", budgets %s", ownBudgetsText(k.Budgets))
	}
	fmt.Fprintln(out)
	return true, nil
}

func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

func printIssued(out io.Writer, ks []server.IssuedKey, asCSV, asJSON bool) {
	switch {
	case asJSON:
		_ = json.NewEncoder(out).Encode(map[string]any{"keys": ks})
	case asCSV:
		w := csvsafe.NewWriter(out)
		// expires is empty for a key that never expires or is not activated;
		// first_use_validity_seconds is set for the latter.
		_ = w.Write([]string{"id", "key", "tier", "expires", "note", "first_use_validity_seconds"})
		for _, k := range ks {
			exp := ""
			if k.ExpiresAt != nil {
				exp = k.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z")
			}
			fu := ""
			if k.FirstUseValiditySeconds > 0 {
				fu = strconv.FormatInt(k.FirstUseValiditySeconds, 10)
			}
			_ = w.Write([]string{k.ID, k.Key, k.Tier, exp, k.Note, fu})
		}
		w.Flush()
	default:
		for _, k := range ks {
			fmt.Fprintln(out, k.Key)
		}
	}
}

// cmdAccount runs `account VERB …`.
func cmdAccount(ctx context.Context, args []string, getenv func(string) string, in io.Reader, out io.Writer) error {
	if len(args) < 2 || args[1] == "help" || args[1] == "-h" || args[1] == "--help" {
		fmt.Fprint(out, "Usage:\n"+accountUsage)
		if len(args) < 2 {
			return &usageError{"account needs a verb: add, replace, show, disable, enable, delete, refresh, probe or login"}
		}
		return nil
	}
	verb := args[1]
	fs := flag.NewFlagSet("account "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tier := fs.String("tier", "", "tier")
	name := fs.String("name", "", "account name")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(reorder(args[2:])); err != nil {
		return &usageError{"account " + verb + ": " + err.Error() + "\n" + accountUsage}
	}
	pos := fs.Args()
	if verb != "add" && verb != "login" {
		if len(pos) != 1 {
			return &usageError{"account " + verb + " needs an account name"}
		}
		*name = pos[0]
	}
	if *name != "" {
		if err := accounts.CheckName(*name); err != nil {
			return &usageError{err.Error()}
		}
	}
	ac, err := newAdminClient(getenv)
	if err != nil {
		return err
	}
	acct := "/admin/api/accounts/" + url.PathEscape(*name)
	var res struct {
		Account server.AccountDetail `json:"account"`
	}
	switch verb {
	case "add", "replace":
		if verb == "add" && (*tier == "" || *name == "") {
			return &usageError{"account add needs --tier and --name, and the credentials file on standard input"}
		}
		body, err := io.ReadAll(io.LimitReader(in, 64<<10+1))
		if err != nil {
			return err
		}
		if len(strings.TrimSpace(string(body))) == 0 {
			return &usageError{"account " + verb + " reads the credentials file on standard input (… < file.json)"}
		}
		if !json.Valid(body) {
			return &usageError{"the credentials file on standard input is not valid JSON"}
		}
		method, path := http.MethodPost, "/admin/api/accounts?tier="+url.QueryEscape(*tier)+"&name="+url.QueryEscape(*name)
		if verb == "replace" {
			method, path = http.MethodPut, acct+"/credentials"
		}
		if err := ac.doRaw(ctx, method, path, body, &res); err != nil {
			return err
		}
		printAccount(out, res.Account, *asJSON)
		if res.Account.Sync != "" && !*asJSON {
			fmt.Fprintln(out, res.Account.Sync)
		}
		if p := res.Account.Probe; p != nil && !*asJSON {
			fmt.Fprintln(out, "probe: "+probeLine(*p))
			if res.Account.Recovered {
				fmt.Fprintln(out, *name+" is back in service (its blacklist entry is gone)")
			}
		}
		return nil
	case "probe":
		var pr struct {
			Probe server.ProbeView `json:"probe"`
		}
		if err := ac.do(ctx, http.MethodPost, acct+"/probe", nil, &pr); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(pr.Probe)
		}
		fmt.Fprintf(out, "%s: %s\n", *name, probeLine(pr.Probe))
		if !pr.Probe.OK {
			return fmt.Errorf("the probe of %s failed", *name)
		}
		return nil
	case "login":
		if *tier == "" || *name == "" {
			return &usageError{"account login needs --tier and --name"}
		}
		return accountLogin(ctx, ac, *tier, *name, in, out, *asJSON)
	case "show":
		if err := ac.do(ctx, http.MethodGet, acct, nil, &res); err != nil {
			return err
		}
		printAccount(out, res.Account, *asJSON)
		return nil
	case "disable", "enable", "delete", "refresh":
		method, path := http.MethodPost, acct+"/"+verb
		if verb == "delete" {
			method, path = http.MethodDelete, acct
		}
		var raw map[string]any
		if err := ac.do(ctx, method, path, nil, &raw); err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(out).Encode(raw)
		}
		switch verb {
		case "delete":
			fmt.Fprintf(out, "%s deleted (file kept in %v)\n", *name, raw["trash"])
		case "refresh":
			fmt.Fprintf(out, "%s refreshed; token expires %v\n", *name, raw["expires_at"])
		default:
			fmt.Fprintf(out, "%s %sd\n", *name, verb)
		}
		return nil
	}
	return &usageError{"unknown account verb " + strconv.Quote(verb) + "\n" + accountUsage}
}

// probeLine says a probe's result in one line: "200 OK in 84 ms" or
// "401 authentication_error in 12 ms: invalid x-api-key".
func probeLine(p server.ProbeView) string {
	what := p.ErrorType
	if p.Status != 0 {
		what = strconv.Itoa(p.Status) + " " + http.StatusText(p.Status)
		if p.ErrorType != "" {
			what = strconv.Itoa(p.Status) + " " + p.ErrorType
		}
	}
	line := fmt.Sprintf("%s in %d ms", what, p.LatencyMS)
	if p.Message != "" {
		line += ": " + p.Message
	}
	return line
}

func printAccount(out io.Writer, a server.AccountDetail, asJSON bool) {
	if asJSON {
		_ = json.NewEncoder(out).Encode(a)
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	kind := string(a.Kind)
	if a.SetupToken {
		kind += " (setup token: never refreshed; replace it before it expires)"
	}
	fmt.Fprintf(tw, "account\t%s\ntier\t%s\nkind\t%s\nexpires\t%s\nfingerprint\t%s\ndisabled\t%v\n",
		a.Name, dash(a.Tier), kind, fmtTime(a.ExpiresAt), a.Fingerprint, a.Disabled)
	_ = tw.Flush()
}

// doRaw is do with a body sent as is (an account file, never re-encoded).
func (a *adminClient) doRaw(ctx context.Context, method, path string, body []byte, out any) error {
	return a.do(ctx, method, path, json.RawMessage(body), out)
}

// slotsLine is a tier's pool header. The total counts accounts in service
// only, so keys still bound to blacklisted accounts can outnumber it: say
// so in words rather than print "1/0 used".
func slotsLine(used, total int) string {
	switch {
	case total == 0 && used == 0:
		return "no slots in service"
	case total == 0:
		return fmt.Sprintf("%d keys bound, no slots in service", used)
	case used > total:
		return fmt.Sprintf("%d keys bound, %d slots in service (full)", used, total)
	}
	return fmt.Sprintf("%d/%d used", used, total)
}

// printKeyShow is `key show` for people: the record, its quotas and usage.
func printKeyShow(out io.Writer, res map[string]json.RawMessage) error {
	var k server.KeyView
	if err := json.Unmarshal(res["key"], &k); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	c := k.CreatedAt
	fmt.Fprintf(tw, "id\t%s\nprefix\t%s\ntier\t%s\nstatus\t%s\naccount\t%s\ncreated\t%s\nexpires\t%s\nnote\t%s\n",
		k.ID, k.Prefix, k.Tier, k.Status, dash(k.Account), fmtTime(&c), keyExpiry(k), dash(k.Note))
	var quotas map[string]struct {
		Used  int    `json:"used"`
		Limit int    `json:"limit"`
		Reset string `json:"reset"`
	}
	_ = json.Unmarshal(res["quotas"], &quotas)
	names := make([]string, 0, len(quotas))
	for f := range quotas {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		q := quotas[f]
		fmt.Fprintf(tw, "quota %s\t%d/%d in 5 h\n", f, q.Used, q.Limit)
	}
	var cost server.CostView
	if json.Unmarshal(res["cost_usd"], &cost) == nil && res["cost_usd"] != nil {
		fmt.Fprintf(tw, "cost	$%.4f last 5 h, $%.4f last 24 h, $%.4f last 30 days, $%.4f total (list prices)\n",
			cost.Last5h, cost.Last24h, cost.Last30d, cost.Total)
	}
	var budgets []server.BudgetView
	_ = json.Unmarshal(res["budgets"], &budgets)
	for _, b := range budgets {
		fmt.Fprintf(tw, "budget %s\t$%.4f of $%.2f spent, resets %s%s\n", b.Window, b.SpentUSD, b.BudgetUSD, fmtTime(&b.Reset), ownMark(k.Budgets, b.Window))
	}
	var sum usage.Summary
	if json.Unmarshal(res["usage"], &sum) == nil {
		for _, w := range []struct {
			label string
			t     usage.Totals
		}{{"last 5 h", sum.Last5h}, {"last 24 h", sum.Last24h}, {"total", sum.Total}} {
			fmt.Fprintf(tw, "usage %s\t%d requests, %d in, %d out, %d cache write, %d cache read tokens\n", w.label,
				w.t.Requests, w.t.InputTokens, w.t.OutputTokens, w.t.CacheCreationInputTokens, w.t.CacheReadInputTokens)
		}
	}
	return tw.Flush()
}
