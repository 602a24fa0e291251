package keys

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestActive(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name    string
		status  string
		expires time.Time
		want    error
		state   string
	}{
		{"active, never expires", StatusActive, time.Time{}, nil, StatusActive},
		{"active, expires later", StatusActive, now.Add(time.Millisecond), nil, StatusActive},
		{"expires exactly now", StatusActive, now, ErrExpired, StatusExpired},
		{"expired", StatusActive, now.Add(-time.Hour), ErrExpired, StatusExpired},
		{"revoked, not expired", StatusRevoked, now.Add(time.Hour), ErrRevoked, StatusRevoked},
		{"revoked and expired: revoked", StatusRevoked, now.Add(-time.Hour), ErrRevoked, StatusRevoked},
		{"unknown status is not usable", "paused", time.Time{}, ErrRevoked, StatusRevoked},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Record{Status: c.status, Expires: c.expires}
			if err := r.Active(now); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("Active = %v, want %v", err, c.want)
			}
			if s := r.State(now); s != c.state {
				t.Fatalf("State = %q, want %q", s, c.state)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	h := Hash(goodKey)
	full := Record{
		ID: ID(h), Hash: h, Prefix: Prefix(goodKey), Tier: "trial", Status: StatusRevoked,
		Note: "n", Created: time.UnixMilli(1_700_000_000_123).UTC(),
		Expires: time.UnixMilli(1_700_086_400_123).UTC(), RevokedAt: time.UnixMilli(1_700_000_500_000).UTC(),
	}
	asMap := func(r Record) map[string]string {
		f := r.fields()
		m := map[string]string{}
		for i := 0; i < len(f); i += 2 {
			m[f[i].(string)] = fmt.Sprint(f[i+1])
		}
		return m
	}
	with := func(k, v string) map[string]string {
		m := asMap(full)
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name     string
		m        map[string]string
		want     *Record
		notFound bool
	}{
		{name: "round trip", m: asMap(full), want: &full},
		{name: "empty is not found", m: map[string]string{}, notFound: true},
		{name: "nil is not found", m: nil, notFound: true},
		{name: "missing created", m: with(fCreated, "")},
		{name: "bad number", m: with(fExpires, "soon")},
		{name: "bad status", m: with(fStatus, "paused")},
		{name: "id of another hash", m: with(fID, "k_000000000000")},
		{name: "bad tier", m: with(fTier, "../etc")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRecord(h, c.m)
			switch {
			case c.want != nil:
				if err != nil || got != *c.want {
					t.Fatalf("ParseRecord = %+v, %v; want %+v", got, err, *c.want)
				}
			case c.notFound:
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("ParseRecord err = %v, want ErrNotFound", err)
				}
			default:
				// A damaged record must not pass for a missing one.
				if err == nil || errors.Is(err, ErrNotFound) {
					t.Fatalf("ParseRecord err = %v, want a corruption error", err)
				}
			}
		})
	}
}
