package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// The ledger's files, per tier, in PRODUCT_DIR (DESIGN.md, "The ledger"):
//
//	<tier>.snapshot.jsonl  a header line, then one record per line
//	<tier>.journal.jsonl   a header line, then one change per line
//
// Both headers carry a generation. Compaction (compact.go) writes snapshot
// gen+1 (the records as of byte "covers" of journal gen), then replaces the
// journal with one of gen+1 holding the lines past covers. A journal older
// than its snapshot was left by a compaction that crashed before its second
// rename: its lines past covers still count. A journal newer than the
// snapshot read means a compaction ran between the two reads.
const (
	snapSuffix    = ".snapshot.jsonl"
	journalSuffix = ".journal.jsonl"
	legacySuffix  = ".json" // before the journal: one JSON array per tier
)

// Change ops, as written in the journal's "op" field.
const (
	OpIssue    = "issue"    // Record: the whole new record
	OpBind     = "bind"     // Account: the key's account ("" unbinds)
	OpRevoke   = "revoke"   // RevokedAt
	OpExtend   = "extend"   // Expires (zero: never)
	OpActivate = "activate" // Expires: a validity that starts at first use
	OpNote     = "note"     // Note
	OpBudget   = "budget"   // Budgets: the key's own (zero: the tier's)
	OpMove     = "move"     // Tier → To: written as move_out and move_in lines
	OpArchive  = "archive"  // the record leaves the live ledger
	opMoveOut  = "move_out"
	opMoveIn   = "move_in"
)

// Change is one durable change to a key's ledger record. Tier names the
// journal it belongs to ("" lets the ledger find the key's tier); which
// other fields count depends on Op (see the Op constants).
type Change struct {
	Op        string
	Tier      string
	Hash      string
	At        time.Time // when it happened; zero: when it is written
	Record    Record    // OpIssue
	Account   string    // OpBind
	Expires   time.Time // OpExtend, OpActivate
	Note      string    // OpNote
	Budgets   Budgets   // OpBudget
	RevokedAt time.Time // OpRevoke
	To        string    // OpMove
}

// line is a journal line as JSON. Every line is complete on its own, so
// `jq` reads the journal and a torn last line never spoils the others.
type line struct {
	Op        string       `json:"op"`
	At        time.Time    `json:"at"`
	ID        string       `json:"id"`
	Hash      string       `json:"hash"`
	Record    *entry       `json:"record,omitempty"`
	Account   *string      `json:"account,omitempty"`
	Expires   *time.Time   `json:"expires,omitempty"` // extend/activate: absent = never
	Note      *string      `json:"note,omitempty"`
	Budgets   *budgetEntry `json:"budgets,omitempty"` // budget: absent = the tier's
	RevokedAt *time.Time   `json:"revoked_at,omitempty"`
	From      string       `json:"from,omitempty"`
	To        string       `json:"to,omitempty"`
}

// header is the first line of a snapshot or a journal.
type header struct {
	Ledger string    `json:"ledger"` // "snapshot" or "journal"
	Tier   string    `json:"tier"`
	Gen    int64     `json:"gen"`
	At     time.Time `json:"at"`
	// Covers (snapshots written by a compaction): the byte offset in
	// journal gen-1 up to which the snapshot holds its changes.
	Covers int64 `json:"covers,omitempty"`
}

func (l *Ledger) snapPath(tier string) string    { return filepath.Join(l.dir, tier+snapSuffix) }
func (l *Ledger) journalPath(tier string) string { return filepath.Join(l.dir, tier+journalSuffix) }
func (l *Ledger) legacyPath(tier string) string  { return filepath.Join(l.dir, tier+legacySuffix) }

func strPtr(s string) *string { return &s }

// toLine turns a change (already applied, so c.Record holds the result for
// issue and move_in) into its journal line.
func toLine(op string, c Change) line {
	ln := line{Op: op, At: c.At.UTC(), ID: ID(c.Hash), Hash: c.Hash}
	switch op {
	case OpIssue, opMoveIn:
		e := toEntry(c.Record)
		ln.Record = &e
		if op == opMoveIn {
			ln.From = c.Tier
		}
	case OpBind:
		ln.Account = strPtr(c.Account)
	case OpRevoke:
		ln.RevokedAt = optTime(c.RevokedAt)
	case OpExtend, OpActivate:
		ln.Expires = optTime(c.Expires)
	case OpNote:
		ln.Note = strPtr(c.Note)
	case OpBudget:
		ln.Budgets = toBudgetEntry(c.Budgets)
	case opMoveOut:
		ln.To = c.To
	}
	return ln
}

// applyLine replays one journal line onto a tier's records. Lines are
// facts already decided, so a line about a key the tier no longer holds
// (archived, moved) is skipped, not an error.
func applyLine(recs map[string]Record, tier string, ln line) error {
	switch ln.Op {
	case OpIssue, opMoveIn:
		if ln.Record == nil {
			return fmt.Errorf("%s line without a record", ln.Op)
		}
		r := ln.Record.record()
		if err := r.validate(); err != nil {
			return err
		}
		if r.Tier != tier {
			return fmt.Errorf("record %s has tier %q", r.ID, r.Tier)
		}
		recs[r.Hash] = r
		return nil
	case opMoveOut, OpArchive:
		delete(recs, ln.Hash)
		return nil
	}
	r, ok := recs[ln.Hash]
	if !ok {
		return nil
	}
	switch ln.Op {
	case OpBind:
		if ln.Account != nil {
			r.Account = *ln.Account
		}
	case OpRevoke:
		r.Status, r.RevokedAt = StatusRevoked, derefTime(ln.RevokedAt)
	case OpExtend, OpActivate:
		r.Expires = derefTime(ln.Expires)
		r.FirstUse = 0
	case OpNote:
		if ln.Note != nil {
			r.Note = *ln.Note
		}
	case OpBudget:
		r.Budgets = ln.Budgets.budgets()
	default:
		return fmt.Errorf("unknown op %q", ln.Op)
	}
	recs[ln.Hash] = r
	return nil
}

// errTorn marks the end of a file that has a header but no newline after
// it: a creation that crashed halfway.
var errNoHeader = errors.New("no header line")

// readHeader reads the first line of f.
func readHeader(data []byte, want string) (header, int, error) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		return header{}, 0, errNoHeader
	}
	var h header
	if err := json.Unmarshal(data[:i], &h); err != nil {
		return header{}, 0, fmt.Errorf("header: %w", err)
	}
	if h.Ledger != want {
		return header{}, 0, fmt.Errorf("header says %q, want %q", h.Ledger, want)
	}
	return h, i + 1, nil
}

// eachLine calls fn for every complete line of data (one that ends in a
// newline) and returns how many bytes they took. What follows the last
// newline is a torn line, left out: a crash cut its append short, and the
// writer that takes the lock next truncates it away.
func eachLine(data []byte, fn func(n int, b []byte) error) (int, error) {
	used, n := 0, 0
	for {
		i := bytes.IndexByte(data[used:], '\n')
		if i < 0 {
			return used, nil
		}
		n++
		if b := bytes.TrimSpace(data[used : used+i]); len(b) > 0 {
			if err := fn(n, b); err != nil {
				return used, err
			}
		}
		used += i + 1
	}
}

// readSnapshot reads a tier's snapshot: its generation, the offset in the
// previous journal it covers, its size and records. A missing snapshot is
// generation 0 with no records.
func (l *Ledger) readSnapshot(tier string) (int64, int64, int64, map[string]Record, error) {
	p := l.snapPath(tier)
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, 0, map[string]Record{}, nil
	}
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	h, off, err := readHeader(data, "snapshot")
	if err != nil {
		return 0, 0, 0, nil, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	recs := make(map[string]Record, bytes.Count(data, []byte{'\n'}))
	_, err = eachLine(data[off:], func(n int, b []byte) error {
		var e entry
		if err := json.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("keys: ledger %s: line %d: %w", p, n+1, err)
		}
		r := e.record()
		if err := r.validate(); err != nil {
			return fmt.Errorf("keys: ledger %s: line %d: %w", p, n+1, err)
		}
		if r.Tier != tier {
			return fmt.Errorf("keys: ledger %s: record %s has tier %q", p, r.ID, r.Tier)
		}
		recs[r.Hash] = r
		return nil
	})
	if err != nil {
		return 0, 0, 0, nil, err
	}
	return h.Gen, h.Covers, int64(len(data)), recs, nil
}

// tailJournal applies the journal's lines from byte off on and returns the
// journal's generation and the offset after the last complete line, and
// whether a torn line follows it. A missing journal is gen -1.
func (l *Ledger) tailJournal(tier string, gen, off int64, recs map[string]Record) (int64, int64, bool, error) {
	p := l.journalPath(tier)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return -1, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	defer f.Close()
	// The header is read from the same open file as the lines: a
	// compaction that replaces the journal meanwhile cannot mix the two.
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, 0, false, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	h, hlen, err := readHeader(head[:n], "journal")
	if errors.Is(err, errNoHeader) {
		return -1, 0, false, nil // its creation crashed before the header was whole
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	if h.Gen != gen || off < int64(hlen) {
		off = int64(hlen) // another generation: the caller decides what it means
		if h.Gen != gen {
			return h.Gen, off, false, nil
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, 0, false, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, 0, false, fmt.Errorf("keys: ledger %s: %w", p, err)
	}
	used, err := eachLine(data, func(_ int, b []byte) error {
		var ln line
		if err := json.Unmarshal(b, &ln); err != nil {
			return err
		}
		return applyLine(recs, tier, ln)
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("keys: ledger %s: at byte %d: %w", p, off+int64(used), err)
	}
	return h.Gen, off + int64(used), used < len(data), nil
}

// encodeLines renders lines as JSON lines, each ending in a newline.
func encodeLines(ls []line) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, ln := range ls {
		if err := enc.Encode(ln); err != nil {
			return nil, fmt.Errorf("keys: ledger encode: %w", err)
		}
	}
	return buf.Bytes(), nil
}

func encodeSnapshotHeader(tier string, gen, covers int64, at time.Time) []byte {
	b, _ := json.Marshal(header{Ledger: "snapshot", Tier: tier, Gen: gen, At: at.UTC(), Covers: covers})
	return append(b, '\n')
}

func encodeHeader(kind, tier string, gen int64, at time.Time) []byte {
	b, _ := json.Marshal(header{Ledger: kind, Tier: tier, Gen: gen, At: at.UTC()})
	return append(b, '\n')
}
