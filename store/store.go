// Package store opens the Redis connection every other package shares: a
// real server, Sentinel or Cluster through redis.UniversalClient, or, when no
// URL is configured, an embedded in-process miniredis.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

// Store is an open connection and what it takes to close it.
type Store struct {
	Client   redis.UniversalClient
	Embedded *miniredis.Miniredis // nil unless REDIS_URL was empty
	Cluster  bool
}

// Close closes the client and stops the embedded server, if any.
func (s *Store) Close() error {
	err := s.Client.Close()
	if s.Embedded != nil {
		s.Embedded.Close()
	}
	return err
}

// Ping checks the store within a short deadline; used by /health.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return s.Client.Ping(ctx).Err()
}

// Options tunes timeouts; zero values take the defaults.
type Options struct {
	// DialTimeout, ReadTimeout and WriteTimeout bound every call, so that a
	// dead store turns into a fast 503 instead of a hanging request.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
}

// ParseURL turns REDIS_URL into client options. Accepted forms:
//
//	redis://[user:pass@]host:port[/db]       one server (rediss:// for TLS)
//	host1:port,host2:port,host3:port         a Redis Cluster
//	redis://host1:port,host2:port            the same, with a scheme
//	host1:26379,host2:26379?master=NAME      Sentinel, monitoring master NAME
func ParseURL(raw string) (*redis.UniversalOptions, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("empty")
	}
	var query url.Values
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		q, err := url.ParseQuery(raw[i+1:])
		if err != nil {
			return nil, fmt.Errorf("bad query: %w", err)
		}
		query, raw = q, raw[:i]
	}
	if !strings.Contains(raw, ",") && (strings.HasPrefix(raw, "redis://") || strings.HasPrefix(raw, "rediss://")) {
		u := raw
		if len(query) > 0 {
			u += "?" + query.Encode()
		}
		if query.Get("master") != "" || query.Get("cluster") != "" {
			u = raw // our own parameters are not go-redis options
		}
		o, err := redis.ParseURL(u)
		if err != nil {
			return nil, err
		}
		uo := &redis.UniversalOptions{
			Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password,
			DB: o.DB, TLSConfig: o.TLSConfig, MasterName: query.Get("master"),
		}
		if query.Get("cluster") == "true" {
			uo.IsClusterMode = true
		}
		return uo, nil
	}
	uo := &redis.UniversalOptions{MasterName: query.Get("master")}
	scheme := ""
	for i, part := range strings.Split(raw, ",") {
		part = strings.TrimSpace(part)
		if i == 0 {
			for _, s := range []string{"redis://", "rediss://"} {
				if strings.HasPrefix(part, s) {
					scheme, part = s, strings.TrimPrefix(part, s)
				}
			}
			if at := strings.LastIndexByte(part, '@'); at >= 0 {
				cred := part[:at]
				part = part[at+1:]
				if c := strings.IndexByte(cred, ':'); c >= 0 {
					uo.Username, uo.Password = cred[:c], cred[c+1:]
				} else {
					uo.Password = cred
				}
			}
		}
		part = strings.TrimSuffix(part, "/")
		if !strings.Contains(part, ":") || strings.ContainsAny(part, "/ ") {
			return nil, fmt.Errorf("address %q is not host:port", part)
		}
		uo.Addrs = append(uo.Addrs, part)
	}
	if scheme == "rediss://" {
		return nil, errors.New("TLS with several addresses is not supported; use one rediss:// URL")
	}
	if uo.MasterName == "" && len(uo.Addrs) > 1 {
		uo.IsClusterMode = true
	}
	return uo, nil
}

// noRetries turns off go-redis's automatic re-sending of a command after
// a read timeout or a broken connection. A script or pipeline that timed
// out on the client may still have run on the server: sending it again
// counts usage twice, takes two quota places or spends two refresh
// attempts. A failed write is reported to the caller instead, which
// decides (the request path answers 503; background writers retry their
// own idempotent steps). -1 is go-redis's "no retries" (0 means 3).
const noRetries = -1

// tune sets what every client of the service needs: short timeouts and no
// command sent twice. A Cluster client re-sends a command or a whole
// pipeline whose reply timed out (or whose connection broke) to a node
// again, up to MaxRedirects times, whatever MaxRetries says: -1 turns that
// off too. It also stops following MOVED/ASK within one call: the call
// fails (503) and triggers a reload of the slot map, so the next one goes
// to the right node.
func tune(uo *redis.UniversalOptions, opts Options) {
	uo.DialTimeout, uo.ReadTimeout, uo.WriteTimeout = opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout
	uo.ContextTimeoutEnabled, uo.MaxRetries = true, noRetries
	uo.MaxRedirects = noRetries
	if uo.Protocol == 0 {
		// RESP2: the service uses no push messages, and on RESP3 go-redis
		// checks for pending pushes before every reply it reads (5-7 % of
		// the proxy's CPU under load in the profile, DESIGN.md).
		uo.Protocol = 2
	}
}

// Open connects to REDIS_URL, or starts an embedded store when it is empty.
func Open(redisURL string, opts Options) (*Store, error) {
	// A dead or hung store must turn into a fast 503, not a hanging
	// request: short timeouts, no blind retries, request deadlines honoured.
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 300 * time.Millisecond
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 400 * time.Millisecond
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 400 * time.Millisecond
	}
	if strings.TrimSpace(redisURL) == "" {
		return openEmbedded(opts)
	}
	uo, err := ParseURL(redisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	tune(uo, opts)
	c := redis.NewUniversalClient(uo)
	if cc, ok := c.(*redis.ClusterClient); ok {
		cc.AddHook(newReloadOnFailure(cc))
	}
	s := &Store{Client: c, Cluster: uo.IsClusterMode}
	// The first command connects lazily: a store down at start is reported
	// by /health and answered with 503, not fatal.
	return s, nil
}

// openEmbedded starts miniredis on a loopback port that requires a random
// password only this process knows: the store holds upstream API keys and
// OAuth tokens, and any local user can reach a loopback port.
func openEmbedded(opts Options) (*Store, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("embedded store password: %w", err)
	}
	pw := hex.EncodeToString(b[:])
	m := miniredis.NewMiniRedis()
	m.RequireAuth(pw)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: []string{m.Addr()}, Password: pw, DialTimeout: opts.DialTimeout,
		ReadTimeout: opts.ReadTimeout, WriteTimeout: opts.WriteTimeout,
		ContextTimeoutEnabled: true, MaxRetries: noRetries,
	})
	return &Store{Client: c, Embedded: m}, nil
}

// RouteLogs sends go-redis's own log lines (pool and failover notices)
// through log, so that LOG_FORMAT=json keeps one JSON stream. go-redis keeps
// its logger process-wide; the service calls this once at start.
func RouteLogs(log logrus.FieldLogger) {
	redis.SetLogger(redisLogger{log.WithField("component", "redis")})
}

type redisLogger struct{ log logrus.FieldLogger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warnf(strings.TrimSpace(format), v...)
}

// ScanKeys lists the keys matching pattern with SCAN (never KEYS, which
// blocks the server), on every master of a cluster.
func ScanKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	scan := func(ctx context.Context, c redis.Cmdable) ([]string, error) {
		var out []string
		iter := c.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			out = append(out, iter.Val())
		}
		return out, iter.Err()
	}
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return scan(ctx, rdb)
	}
	var mu sync.Mutex
	var all []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := scan(ctx, c)
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	})
	return all, err
}
