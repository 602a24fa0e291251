package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// `account probe` sends one count_tokens with the account's credential
// and shows the status, latency and error type, never the credential.
func TestProbeAccountNow(t *testing.T) {
	e := newEnv(t)
	good := e.apiAccount("trial", "t1")
	e.writeAccount("trial", "t2", map[string]any{"apiKey": "sk-ant-api03-rejected-secret"})
	e.start()
	var out struct {
		Probe ProbeView `json:"probe"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/t1/probe", nil, &out); st != 200 || !out.Probe.OK || out.Probe.Status != 200 || out.Probe.LatencyMS < 0 {
		t.Fatalf("probe of a working account: %d %+v", st, out.Probe)
	}
	if e.lastCredential() != good {
		t.Fatal("the probe did not use the account's credential")
	}
	out.Probe = ProbeView{}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/t2/probe", nil, &out); st != 200 || out.Probe.OK || out.Probe.Status != 401 || out.Probe.ErrorType != "authentication_error" {
		t.Fatalf("probe of a rejected account: %d %+v", st, out.Probe)
	}
	if strings.Contains(out.Probe.Message, "rejected-secret") {
		t.Fatalf("the probe shows the credential: %+v", out.Probe)
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/nobody/probe", nil, nil); st != 404 {
		t.Fatalf("probe of an unknown account: %d, want 404", st)
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/..x/probe", nil, nil); st != 400 {
		t.Fatalf("probe of a bad name: %d, want 400", st)
	}
}

// Replacing a blacklisted account's credentials with working ones brings
// it back at once; credentials that do not work leave it blacklisted, and
// a disabled account stays disabled.
func TestReplaceWithWorkingCredentialsClearsBlacklist(t *testing.T) {
	e := newEnv(t)
	e.writeAccount("trial", "t1", map[string]any{"apiKey": "sk-ant-api03-revoked"})
	e.start()
	if st := e.admin(http.MethodPost, "/admin/api/accounts/t1/blacklist", map[string]string{"reason": "upstream 401 authentication_error: invalid x-api-key"}, nil); st != 200 {
		t.Fatalf("blacklist: %d", st)
	}
	replace := func(key string) AccountDetail {
		t.Helper()
		var out struct{ Account AccountDetail }
		if st := e.admin(http.MethodPut, "/admin/api/accounts/t1/credentials", map[string]string{"apiKey": key}, &out); st != 200 {
			t.Fatalf("replace: %d", st)
		}
		return out.Account
	}
	if d := replace("sk-ant-api03-still-bad"); d.Recovered || d.Probe == nil || d.Probe.OK {
		t.Fatalf("replace with a rejected key: %+v", d)
	}
	if v := accountByName(e.accountViews(), "t1"); v == nil || v.Blacklist == nil {
		t.Fatalf("rejected credentials brought the account back: %+v", v)
	}
	working := "sk-ant-api03-working"
	e.fake.AddAPIKey(working)
	if d := replace(working); !d.Recovered || d.Probe == nil || !d.Probe.OK {
		t.Fatalf("replace with a working key: %+v", d)
	}
	if v := accountByName(e.accountViews(), "t1"); v == nil || v.Blacklist != nil {
		t.Fatalf("still blacklisted after working credentials: %+v", v)
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/t1/disable", nil, nil); st != 200 {
		t.Fatalf("disable: %d", st)
	}
	if d := replace(working); d.Recovered {
		t.Fatalf("replace ended a disable: %+v", d)
	}
	if v := accountByName(e.accountViews(), "t1"); v == nil || v.Blacklist == nil || v.Blacklist.Reason != "disabled" {
		t.Fatalf("after replacing a disabled account: %+v", v)
	}
}

// A probe never follows a redirect: the credential would go to whatever
// host the redirect names.
func TestProbeFollowsNoRedirect(t *testing.T) {
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "" {
			leaked.Add(1)
		}
	}))
	defer other.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	e := newEnv(t)
	e.writeAccount("trial", "t1", map[string]any{"apiKey": "sk-ant-api03-redirected", "baseURL": redirect.URL})
	e.start()
	var out struct {
		Probe ProbeView `json:"probe"`
	}
	if st := e.admin(http.MethodPost, "/admin/api/accounts/t1/probe", nil, &out); st != 200 || out.Probe.Status != http.StatusTemporaryRedirect || out.Probe.OK {
		t.Fatalf("probe: %d %+v", st, out.Probe)
	}
	if leaked.Load() != 0 {
		t.Fatal("the probe followed the redirect with the credential")
	}
}
