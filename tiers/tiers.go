// Package tiers owns the product table: which tiers exist, how many keys an
// upstream account carries per tier, which model families a tier may call and
// how many requests per family fit in the sliding window.
package tiers

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Other is the family of any model no family's match list claims.
const Other = "other"

// Family groups models that share a quota, e.g. all Sonnet versions.
type Family struct {
	Name string `json:"name"`
	// Match lists substrings; a model whose lower-cased name contains one
	// belongs to the family. The first family that matches wins.
	Match []string `json:"match"`
	// Models are the ids GET /v1/models lists for this family.
	Models []string `json:"models"`
	// Display names for the models, same order; optional.
	DisplayNames []string `json:"display_names,omitempty"`
}

// Tier is one product line.
type Tier struct {
	Name string `json:"name"`
	// Slots is how many keys of this tier one upstream account carries.
	Slots int `json:"slots"`
	// Families the tier may call; empty means every family.
	Families []string `json:"families,omitempty"`
	// Quotas maps a family to its requests per window; a family without an
	// entry is unlimited.
	Quotas map[string]int `json:"quotas,omitempty"`
	// Validity is how long an issued key lives; 0 means forever.
	Validity Duration `json:"validity,omitempty"`
	// Concurrency is the most requests one key may have in flight at once;
	// 0 (absent) means no limit, so a tiers file written before the limit
	// existed keeps selling what it sold. The built-in tiers set theirs.
	Concurrency int `json:"concurrency,omitempty"`
	// AccountConcurrency is the default most requests one upstream account
	// of the tier has in flight at once, per replica ("max_concurrency" in
	// an account file wins); 0 means no limit. A request that finds its
	// account full is served by another account of the tier (overflow).
	AccountConcurrency int `json:"account_concurrency,omitempty"`
	// Overflow lets a key's request be served by another account of the
	// tier when its own is limited, cooling or failing. Absent means true;
	// false is for operators who sell dedicated accounts.
	Overflow *bool `json:"overflow,omitempty"`
	// PriceMultiplier is what the tier's customers are billed per dollar
	// of list-price cost (1.5 sells at list + 50 %); 0 or absent means 1.
	PriceMultiplier float64 `json:"price_multiplier,omitempty"`
	// ValidityFrom is when a key's validity starts: "issue" (the default)
	// or "first_use", its first successful request.
	ValidityFrom string `json:"validity_from,omitempty"`
	// Budgets caps what a key of the tier may spend, in list-price US
	// dollars per UTC day and week; a key may carry its own.
	Budgets *Budgets `json:"budgets,omitempty"`
}

// MaxConcurrent is the key's limit of requests in flight; 0 means none.
func (tr *Tier) MaxConcurrent() int { return tr.Concurrency }

// Overflows reports whether the tier's keys may overflow (default true).
func (tr *Tier) Overflows() bool { return tr.Overflow == nil || *tr.Overflow }

// Table is the whole product definition.
type Table struct {
	// Window is the sliding quota window, 5 hours unless the file says otherwise.
	Window   Duration `json:"window"`
	Families []Family `json:"families"`
	Tiers    []*Tier  `json:"tiers"`
	// Prices per model family, US dollars per million tokens. A file's
	// entries replace the built-in price of that family; the others stay.
	Prices map[string]Price `json:"prices,omitempty"`
	// ModelPrices are list prices per model, US dollars per million tokens,
	// keyed by a model name or the name without its date ("claude-opus-4-5"
	// prices "claude-opus-4-5-20251101"). A model without one takes its
	// family's price. A file's entries add to the built-in list or replace
	// the built-in price of the same name.
	ModelPrices map[string]Price `json:"model_prices,omitempty"`
	// Aliases map a short name a client may send ("sonnet") to the real
	// model sent upstream. Quotas, tier rules and the answer all use the
	// real model. A file that names aliases replaces the built-in ones.
	Aliases map[string]string `json:"aliases,omitempty"`
}

// Duration is a time.Duration that reads and writes as "5h", "720h", "0".
type Duration time.Duration

// MarshalJSON writes the Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a Go duration string such as "24h" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("want a duration like \"24h\" or seconds, got %s", b)
		}
		*d = Duration(time.Duration(secs * float64(time.Second)))
		return nil
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like \"24h\": %w", err)
	}
	*d = Duration(v)
	return nil
}

// Builtin returns the table of docs/contract.md.
func Builtin() *Table {
	t := &Table{
		Window: Duration(5 * time.Hour),
		Families: []Family{
			{Name: "opus", Match: []string{"opus"}, Models: []string{
				"claude-opus-4-5-20251101", "claude-opus-4-1-20250805", "claude-opus-4-20250514",
			}, DisplayNames: []string{"Claude Opus 4.5", "Claude Opus 4.1", "Claude Opus 4"}},
			{Name: "sonnet", Match: []string{"sonnet"}, Models: []string{
				"claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514", "claude-3-7-sonnet-20250219",
			}, DisplayNames: []string{"Claude Sonnet 4.5", "Claude Sonnet 4", "Claude Sonnet 3.7"}},
			{Name: Other, Models: []string{
				"claude-haiku-4-5-20251001", "claude-3-5-haiku-20241022",
			}, DisplayNames: []string{"Claude Haiku 4.5", "Claude Haiku 3.5"}},
		},
		Tiers: []*Tier{
			{Name: "trial", Slots: 7, Families: []string{"sonnet"}, Quotas: map[string]int{"sonnet": 42}, Validity: Duration(24 * time.Hour), Concurrency: 2},
			{Name: "medium", Slots: 7, Families: []string{"sonnet"}, Quotas: map[string]int{"sonnet": 42}, Validity: Duration(30 * 24 * time.Hour), Concurrency: 2},
			{Name: "high", Slots: 3, Quotas: map[string]int{"opus": 10, "sonnet": 50}, Concurrency: 4},
			{Name: "supreme", Slots: 2, Quotas: map[string]int{"opus": 15, "sonnet": 75}, Concurrency: 6},
		},
		Prices:      builtinPrices(),
		ModelPrices: builtinModelPrices(),
		Aliases: map[string]string{
			"sonnet": "claude-sonnet-4-5-20250929",
			"opus":   "claude-opus-4-1-20250805",
			"haiku":  "claude-haiku-4-5-20251001",
		},
	}
	if err := t.Validate(); err != nil {
		panic(err) // the built-in table is a constant; a failure is a programming error
	}
	return t
}

// Load reads a tiers file. Missing top-level sections fall back to the
// built-in ones, so a file may list only its tiers.
func Load(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tiers file: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("tiers file %s: %w", path, err)
	}
	return t, nil
}

// Parse decodes and validates a tiers file's bytes.
func Parse(b []byte) (*Table, error) {
	var t Table
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	def := Builtin()
	if t.Window == 0 {
		t.Window = def.Window
	}
	if t.Families == nil {
		t.Families = def.Families
	}
	// Built-in prices apply to the families of the same name that the
	// table keeps; the file's own entries win.
	prices := map[string]Price{}
	for _, f := range append(t.Families, Family{Name: Other}) {
		if p, ok := def.Prices[f.Name]; ok {
			prices[f.Name] = p
		}
	}
	for f, p := range t.Prices {
		prices[f] = p
	}
	t.Prices = prices
	models := builtinModelPrices()
	for m, p := range t.ModelPrices {
		models[m] = p
	}
	t.ModelPrices = models
	if t.Aliases == nil {
		t.Aliases = def.Aliases
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// ErrInvalid marks a table that fails validation.
var ErrInvalid = errors.New("invalid tiers table")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// Validate checks the table and names the offending field.
func (t *Table) Validate() error {
	if t.Window <= 0 {
		return invalid("window", "must be positive")
	}
	fams := map[string]bool{}
	for i, f := range t.Families {
		field := fmt.Sprintf("families[%d]", i)
		if f.Name == "" {
			return invalid(field+".name", "must not be empty")
		}
		if fams[f.Name] {
			return invalid(field+".name", "duplicate family %q", f.Name)
		}
		if f.Name != Other && len(f.Match) == 0 {
			return invalid(field+".match", "family %q needs at least one substring", f.Name)
		}
		if len(f.DisplayNames) > 0 && len(f.DisplayNames) != len(f.Models) {
			return invalid(field+".display_names", "needs one name per model")
		}
		fams[f.Name] = true
	}
	fams[Other] = true
	if len(t.Tiers) == 0 {
		return invalid("tiers", "at least one tier is needed")
	}
	names := map[string]bool{}
	for i, tr := range t.Tiers {
		field := fmt.Sprintf("tiers[%d]", i)
		if tr == nil {
			return invalid(field, "must be an object")
		}
		if !validName(tr.Name) {
			return invalid(field+".name", "%q must be lower-case letters, digits, - or _", tr.Name)
		}
		if names[tr.Name] {
			return invalid(field+".name", "duplicate tier %q", tr.Name)
		}
		names[tr.Name] = true
		if tr.Slots < 1 {
			return invalid(field+".slots", "must be at least 1")
		}
		for _, f := range tr.Families {
			if !fams[f] {
				return invalid(field+".families", "unknown family %q", f)
			}
		}
		for f, n := range tr.Quotas {
			if !fams[f] {
				return invalid(field+".quotas", "unknown family %q", f)
			}
			if n < 0 {
				return invalid(field+".quotas."+f, "must not be negative")
			}
		}
		if tr.Validity < 0 {
			return invalid(field+".validity", "must not be negative")
		}
		if tr.Concurrency < 0 {
			return invalid(field+".concurrency", "must not be negative")
		}
		if tr.AccountConcurrency < 0 {
			return invalid(field+".account_concurrency", "must not be negative")
		}
		if err := tr.validateSelling(field); err != nil {
			return err
		}
	}
	for name, model := range t.Aliases {
		field := "aliases." + name
		if strings.TrimSpace(name) == "" || strings.TrimSpace(model) == "" {
			return invalid("aliases", "names and models must not be empty")
		}
		if _, chained := t.Aliases[model]; chained {
			return invalid(field, "points at another alias %q; name the real model", model)
		}
	}
	return validatePrices(t)
}

// Resolve returns the real model for an alias, and any other name as is.
// The match is exact: "Sonnet" is not the alias "sonnet", so what a client
// sends either is an alias byte for byte or goes upstream untouched.
func (t *Table) Resolve(model string) string {
	if real, ok := t.Aliases[model]; ok {
		return real
	}
	return model
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Get returns the named tier.
func (t *Table) Get(name string) (*Tier, bool) {
	for _, tr := range t.Tiers {
		if tr.Name == name {
			return tr, true
		}
	}
	return nil, false
}

// Names lists the tiers in table order.
func (t *Table) Names() []string {
	out := make([]string, len(t.Tiers))
	for i, tr := range t.Tiers {
		out[i] = tr.Name
	}
	return out
}

// FamilyOf maps a model name to its family.
func (t *Table) FamilyOf(model string) string {
	m := strings.ToLower(model)
	for _, f := range t.Families {
		for _, s := range f.Match {
			if s != "" && strings.Contains(m, strings.ToLower(s)) {
				return f.Name
			}
		}
	}
	return Other
}

// Allows reports whether the tier may call the family.
func (tr *Tier) Allows(family string) bool {
	if len(tr.Families) == 0 {
		return true
	}
	for _, f := range tr.Families {
		if f == family {
			return true
		}
	}
	return false
}

// Quota returns the family's limit per window and whether it has one.
func (tr *Tier) Quota(family string) (int, bool) {
	n, ok := tr.Quotas[family]
	return n, ok
}

// Title is the tier's name as a customer-facing word: "trial" → "Trial".
func (tr *Tier) Title() string { return title(tr.Name) }

// AllowedText words the families a tier may use for an error message,
// e.g. "Sonnet" or "Opus and Sonnet".
func (tr *Tier) AllowedText() string {
	fs := append([]string(nil), tr.Families...)
	sort.Strings(fs)
	for i, f := range fs {
		fs[i] = title(f)
	}
	switch len(fs) {
	case 0:
		return "all"
	case 1:
		return fs[0]
	default:
		return strings.Join(fs[:len(fs)-1], ", ") + " and " + fs[len(fs)-1]
	}
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID          string
	DisplayName string
	Family      string
}

// ModelsFor lists the models the tier may call, in table order.
func (t *Table) ModelsFor(tr *Tier) []Model {
	var out []Model
	for _, f := range t.Families {
		if !tr.Allows(f.Name) {
			continue
		}
		for i, id := range f.Models {
			dn := id
			if i < len(f.DisplayNames) {
				dn = f.DisplayNames[i]
			}
			out = append(out, Model{ID: id, DisplayName: dn, Family: f.Name})
		}
	}
	return out
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
