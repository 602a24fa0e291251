package accounts

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

// UtilWriter keeps the latest utilization per account in memory and writes
// it to the store once per interval, in one pipeline per flush, from its
// own goroutine: the response path only hands it the answer's rate-limit
// headers, copied into a buffer the account reuses. They are parsed at
// flush time, so the value written is the last answer of the interval
// (trailing edge): the state just before traffic stops is the one shown.
type UtilWriter struct {
	rdb   redis.UniversalClient
	log   logrus.FieldLogger
	every time.Duration

	mu sync.Mutex
	// pending holds parsed values (Observe); raw the latest headers of
	// each account's answers (ObserveHeaders), parsed at flush. An account
	// is in at most one of them: the later observation wins.
	pending map[string]Utilization
	raw     map[string]*rawUtil
}

// rawUtil is an answer's rate-limit headers as name, value pairs, and
// when it came. fresh is false once flushed: the buffer is kept for reuse.
type rawUtil struct {
	pairs []string
	at    time.Time
	fresh bool
}

// Get reads a header as http.Header.Get does for canonical names.
func (r *rawUtil) Get(name string) string {
	for i := 0; i+1 < len(r.pairs); i += 2 {
		if strings.EqualFold(r.pairs[i], name) {
			return r.pairs[i+1]
		}
	}
	return ""
}

// NewUtilWriter returns a writer flushing every interval (default 1 s).
func NewUtilWriter(rdb redis.UniversalClient, every time.Duration, log logrus.FieldLogger) *UtilWriter {
	if every <= 0 {
		every = time.Second
	}
	return &UtilWriter{rdb: rdb, log: log, every: every, pending: map[string]Utilization{}, raw: map[string]*rawUtil{}}
}

// Observe records an account's latest utilization; it never blocks on the store.
func (w *UtilWriter) Observe(account string, u Utilization) {
	w.mu.Lock()
	w.pending[account] = u
	if r := w.raw[account]; r != nil {
		r.fresh = false
	}
	w.mu.Unlock()
}

// rateLimitPrefix starts every upstream rate-limit header (canonical form).
const rateLimitPrefix = "Anthropic-Ratelimit-"

// ObserveHeaders records the rate-limit headers of an answer of account
// (an http.Header) as the account's latest; an answer without any leaves
// the previous one. It copies only those headers, into a buffer the
// account reuses, and parses nothing: Flush does. An answer without
// rate-limit headers (API-key accounts, most relays) costs a scan of its
// header names: no lock, no allocation.
func (w *UtilWriter) ObserveHeaders(account string, h map[string][]string, at time.Time) {
	if !hasRateLimit(h) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.raw[account]
	if r == nil {
		r = &rawUtil{}
		w.raw[account] = r
	}
	pairs := r.pairs[:0]
	for k, vs := range h {
		if len(vs) > 0 && strings.HasPrefix(k, rateLimitPrefix) {
			pairs = append(pairs, k, vs[0])
		}
	}
	r.pairs, r.at, r.fresh = pairs, at, true
	delete(w.pending, account)
}

// hasRateLimit reports whether h carries a rate-limit header with a value.
func hasRateLimit(h map[string][]string) bool {
	for k, vs := range h {
		if len(vs) > 0 && strings.HasPrefix(k, rateLimitPrefix) {
			return true
		}
	}
	return false
}

// Flush writes what was observed since the last flush: the latest
// answer's headers of each account, parsed now.
func (w *UtilWriter) Flush(ctx context.Context) error {
	w.mu.Lock()
	batch := w.pending
	w.pending = map[string]Utilization{}
	for a, r := range w.raw {
		if !r.fresh {
			continue
		}
		r.fresh = false
		if u, ok := ParseUtilization(r, r.at); ok {
			batch[a] = u
		}
	}
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(batch))
	for a, u := range batch {
		b, _ := json.Marshal(u)
		args = append(args, a, string(b))
	}
	if err := w.rdb.HSet(ctx, keyUtil, args...).Err(); err != nil {
		// Put back what was not written unless something newer came meanwhile.
		w.mu.Lock()
		for a, u := range batch {
			_, newer := w.pending[a]
			if r := w.raw[a]; r != nil && r.fresh {
				newer = true
			}
			if !newer {
				w.pending[a] = u
			}
		}
		w.mu.Unlock()
		return fmt.Errorf("write utilization: %w", err)
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (w *UtilWriter) Run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	lastErr := ""
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = w.Flush(fctx)
			cancel()
			return
		case <-t.C:
		}
		if err := w.Flush(ctx); err != nil && err.Error() != lastErr && ctx.Err() == nil {
			w.log.WithError(err).Warn("utilization not written; retrying")
			lastErr = err.Error()
		} else if err == nil {
			lastErr = ""
		}
	}
}
