package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The operator's account verbs without a text editor: add, replace,
// disable/enable and delete act on the account folder, which stays the
// truth; the caller syncs afterwards so Redis follows.

// DisabledReason is the blacklist reason of an account whose file says
// "disabled": true. Sync keeps the entry in step with the file; recovery
// probes leave it alone (only enable, through the file, ends it).
const DisabledReason = "disabled"

// TrashDir is the folder under ACCOUNT_DIR where deleted account files go.
// Its leading dot keeps it out of every sync.
const TrashDir = ".trash"

// Errors of the account verbs.
var (
	ErrExists     = errors.New("an account of that name already exists")
	ErrNoSuchFile = errors.New("no account file of that name")
	// ErrBadName: a name outside NameRule ("..", ".hidden", "a/b").
	ErrBadName = errors.New("invalid account name")
	// ErrDisabled: recover refuses a disabled account (enable ends it).
	ErrDisabled = errors.New("the account is disabled")
)

// setDisabledScript makes the blacklist agree with the file's flag:
// disabling writes (or overwrites) the entry with the reason "disabled";
// enabling removes only an entry with that reason, so an account that is
// blacklisted for another cause stays blacklisted. Answers 1 on a change.
var setDisabledScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local isDisabled = cur and string.find(cur, ARGV[3], 1, true) ~= nil
if ARGV[2] == '1' then
  if isDisabled then return 0 end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  return 1
end
if isDisabled then redis.call('HDEL', KEYS[1], ARGV[1]); return 1 end
return 0
`)

// disabledMarker is `"reason":"disabled"` as encoding/json writes it: the
// part of a blacklist entry that says the operator disabled the account.
func disabledMarker() string {
	marker, _ := json.Marshal(map[string]string{"reason": DisabledReason})
	return strings.TrimSuffix(strings.TrimPrefix(string(marker), "{"), "}")
}

// SetDisabled puts the account on the blacklist with DisabledReason, or
// takes such an entry away. Its keys move as for any blacklisting.
func (p *Pool) SetDisabled(ctx context.Context, account string, disabled bool) (bool, error) {
	flag := "0"
	if disabled {
		flag = "1"
	}
	entry, _ := json.Marshal(BlacklistEntry{Reason: DisabledReason, Since: p.clock.Now().UTC()})
	n, err := setDisabledScript.Run(ctx, p.rdb, []string{keyBL}, account, flag, disabledMarker(), string(entry)).Int()
	if err != nil {
		return false, fmt.Errorf("set disabled %s: %w", account, err)
	}
	if n == 1 {
		state := "enabled"
		if disabled {
			state = "disabled"
		}
		p.log.WithField("account", account).Infof("account %s %s", account, state)
	}
	return n == 1, nil
}

// Summary describes an account's credential without revealing it: what a
// pasted file is shown back as.
type Summary struct {
	Kind        Kind       `json:"kind"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Fingerprint string     `json:"fingerprint"`
	Disabled    bool       `json:"disabled"`
	// SetupToken: a long-lived token that is never refreshed.
	SetupToken bool `json:"setup_token,omitempty"`
}

// Summarize is a's Summary. The fingerprint is a short SHA-256 prefix of
// the credential the proxy sends (the access token or the API key), enough
// to tell two credentials apart, useless for recovering either.
func Summarize(a Account) Summary {
	h := sha256.Sum256([]byte(string(a.Kind) + "\x00" + a.Credential() + "\x00" + a.RefreshToken))
	s := Summary{Kind: a.Kind, Fingerprint: "sha256:" + hex.EncodeToString(h[:])[:12], Disabled: a.Disabled, SetupToken: a.SetupToken()}
	if !a.ExpiresAt.IsZero() {
		t := a.ExpiresAt.UTC()
		s.ExpiresAt = &t
	}
	return s
}

// FindFile returns the path of the account file named name under dir
// (names are unique across tiers), or ErrNoSuchFile. It walks the folder
// as LoadDir does (the same walker), so it finds every account the sync
// serves, symlinked folders included, and returns the path the account
// was loaded from.
func FindFile(dir, name string) (string, error) {
	var found string
	err := walkFolder(dir, func(path, _, n string) bool {
		if n == name {
			found = path
		}
		return found == ""
	}, func(LoadError) {})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("find account %s: %w", name, err)
	}
	if found == "" {
		return "", fmt.Errorf("%w: %s", ErrNoSuchFile, name)
	}
	return found, nil
}

// checkBody validates a pasted account file; the error never quotes it.
func checkBody(body []byte) (Account, error) {
	if len(body) > 64<<10 {
		return Account{}, fmt.Errorf("%w: larger than 64 KiB", ErrBadFile)
	}
	return Parse(body)
}

// CheckName is ValidName as an error that says the rule.
func CheckName(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("%w %q: an account name must be %s", ErrBadName, name, NameRule)
	}
	return nil
}

// AddFile writes a new account file dir/<tier>/<name>.json (mode 0600,
// atomically) after checking the name, that no tier has it yet, and the
// body. The caller has checked that tier exists. A tier folder that is a
// link is written through, inside dir only.
func AddFile(dir, tier, name string, body []byte) (Account, error) {
	if err := CheckName(name); err != nil {
		return Account{}, err
	}
	if hidden(tier) || strings.ContainsAny(tier, `/\`) || tier == "" {
		return Account{}, fmt.Errorf("%w: tier %q", ErrBadFile, tier)
	}
	a, err := checkBody(body)
	if err != nil {
		return Account{}, err
	}
	// A first account may come before the folder exists (a new install).
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Account{}, fmt.Errorf("add account %s: %w", name, err)
	}
	unlock, err := lockFolder(dir)
	if err != nil {
		return Account{}, fmt.Errorf("add account %s: %w", name, err)
	}
	defer unlock()
	if p, err := FindFile(dir, name); err == nil {
		return Account{}, fmt.Errorf("%w: %s (%s)", ErrExists, name, p)
	}
	path := filepath.Join(dir, tier, name+".json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Account{}, fmt.Errorf("add account %s: %w", name, err)
	}
	if err := writeLocked(dir, path, body); err != nil {
		return Account{}, fmt.Errorf("add account %s: %w", name, err)
	}
	a.Name, a.Tier, a.Path = name, tier, path
	return a, nil
}

// ReplaceFile puts new credentials in an existing account's file. The
// account keeps its name, tier and disabled flag; fields of the new body
// are otherwise taken as pasted.
func ReplaceFile(dir, name string, body []byte) (Account, error) {
	path, err := FindFile(dir, name)
	if err != nil {
		return Account{}, err
	}
	a, err := checkBody(body)
	if err != nil {
		return Account{}, err
	}
	err = updateFile(dir, path, func(old []byte) ([]byte, error) {
		prev, err := Parse(old)
		if err != nil || prev.Disabled == a.Disabled {
			return body, nil
		}
		a.Disabled = prev.Disabled
		return setField(body, "disabled", prev.Disabled)
	})
	if err != nil {
		return Account{}, fmt.Errorf("replace account %s: %w", name, err)
	}
	a.Name, a.Path = name, path
	return a, nil
}

// SetFileDisabled writes or clears "disabled": true in the account's file,
// keeping every other field.
func SetFileDisabled(dir, name string, disabled bool) (string, error) {
	path, err := FindFile(dir, name)
	if err != nil {
		return "", err
	}
	err = updateFile(dir, path, func(b []byte) ([]byte, error) { return setField(b, "disabled", disabled) })
	if err != nil {
		return "", fmt.Errorf("account %s: %w", name, err)
	}
	return path, nil
}

// setField sets (true) or removes (false) a boolean top-level field.
func setField(b []byte, field string, on bool) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: invalid JSON", ErrBadFile)
	}
	if on {
		doc[field] = json.RawMessage("true")
	} else {
		delete(doc, field)
	}
	return marshalCompact(doc)
}

// TrashFile moves the account's file to dir/.trash/<tier>/<name>.json.<time>
// and returns the new path. The account then leaves at the next sync as
// for any removed file. The name no longer ends in .json, so even a sync
// that walked into the trash would not load it again.
func TrashFile(dir, name string, now time.Time) (string, error) {
	unlock, err := lockFolder(dir)
	if err != nil {
		return "", fmt.Errorf("delete account %s: %w", name, err)
	}
	defer unlock()
	path, err := FindFile(dir, name)
	if err != nil {
		return "", err
	}
	rel, _ := filepath.Rel(dir, filepath.Dir(path))
	dst := filepath.Join(dir, TrashDir, rel, fmt.Sprintf("%s.json.%s", name, now.UTC().Format("20060102T150405Z")))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", fmt.Errorf("delete account %s: %w", name, err)
	}
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("delete account %s: %w", name, err)
	}
	return dst, nil
}
