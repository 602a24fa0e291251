package keys

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"context"
)

// Page limits for lists of keys.
const (
	DefaultPage = 100
	MaxPage     = 1000
)

// ErrCursor: a list cursor that this ledger did not hand out.
var ErrCursor = fmt.Errorf("keys: bad cursor")

// cursor is the position after a record in creation order, opaque to
// clients: base64 of "<created unix ms>:<id>".
func encodeCursor(r Record) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(toMillis(r.Created), 10) + ":" + r.ID))
}

func decodeCursor(s string) (Record, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Record{}, ErrCursor
	}
	ms, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return Record{}, ErrCursor
	}
	return Record{Created: time.UnixMilli(n).UTC(), ID: id}, nil
}

// Page returns up to limit ledger records that match f, in creation order
// after cursor ("" starts at the oldest), and the cursor of the next page
// ("" when this is the last). It walks the tiers' sorted records in memory
// (brought up to date first), never Redis, so a page of 100 costs the same
// at 100,000 keys, up to the records the filter skips.
func (l *Ledger) Page(ctx context.Context, f Filter, now time.Time, cursor string, limit int) ([]Record, string, error) {
	if limit <= 0 {
		limit = DefaultPage
	}
	limit = min(limit, MaxPage)
	var after Record
	if cursor != "" {
		var err error
		if after, err = decodeCursor(cursor); err != nil {
			return nil, "", err
		}
	}
	var out []Record
	more := false
	err := l.view(ctx, func(sts []*tierState) {
		var heads [][]Record
		for _, st := range sts {
			rs := st.ordered()
			if len(rs) == 0 || f.Tier != "" && rs[0].Tier != f.Tier {
				continue
			}
			if cursor != "" {
				rs = rs[sort.Search(len(rs), func(i int) bool { return recordBefore(after, rs[i]) }):]
			}
			heads = append(heads, rs)
		}
		// Merge the tiers' sorted slices, oldest first.
		for {
			best := -1
			for i, h := range heads {
				if len(h) > 0 && (best < 0 || recordBefore(h[0], heads[best][0])) {
					best = i
				}
			}
			if best < 0 {
				return
			}
			r := heads[best][0]
			heads[best] = heads[best][1:]
			if !f.match(r, now) {
				continue
			}
			if len(out) == limit {
				more = true
				return
			}
			out = append(out, r)
		}
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = encodeCursor(out[len(out)-1])
	}
	return out, next, nil
}

// Each calls fn for every ledger record that matches f, in no order, from
// the records in memory (brought up to date first): no copy, no sort, no
// Redis. For counts over every key (a tier's sold and unbound keys before
// each bulk issue), which paging through 100,000 records made cost about
// a second at that size. fn runs with the ledger's mutex held: it must be
// quick and must not call the ledger.
func (l *Ledger) Each(ctx context.Context, f Filter, now time.Time, fn func(Record)) error {
	return l.view(ctx, func(sts []*tierState) {
		for _, st := range sts {
			for _, r := range st.recs {
				if f.match(r, now) {
					fn(r)
				}
			}
		}
	})
}

// Lapsed lists the keys the ledger holds as revoked or expired at now, and
// the earliest expiry still ahead among the others (zero: none): what an
// expiry sweep must look at, found in memory rather than by reading every
// binding and record from Redis.
func (l *Ledger) Lapsed(ctx context.Context, now time.Time) ([]string, time.Time, error) {
	var out []string
	var next time.Time
	err := l.view(ctx, func(sts []*tierState) {
		for _, st := range sts {
			for h, r := range st.recs {
				if r.Active(now) != nil {
					out = append(out, h)
				} else if !r.Expires.IsZero() && (next.IsZero() || r.Expires.Before(next)) {
					next = r.Expires
				}
			}
		}
	})
	return out, next, err
}
