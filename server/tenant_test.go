package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-route/claude-route/internal/clock"
	"github.com/claude-route/claude-route/internal/fakeupstream"
)

// openBody starts a POST that declares size bytes of body and sends only
// the first bytes of it, on a raw connection the caller closes.
func openBody(t *testing.T, url, key string, size int64, first string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Api-Key: %s\r\nContent-Length: %d\r\n\r\n%s", key, size, first)
	return c
}

// Issue 24: nine connections of one key, each declaring 32 MiB and sending
// one byte, took the whole MAX_INFLIGHT_BODY_BYTES (charged by the declared
// length), and every other key's request got 503 for a minute. Bytes are
// taken as they arrive now, and within the key's fair share: another key
// is served at once (the fake clock never lets a wait for room end).
func TestOneKeysUnreadBodiesLeaveAnotherKeyServed(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, withClock(clk))
	high, _ := e.tiers.Get("high")
	high.Concurrency = 10
	e.apiAccount("high", "h1")
	url := e.start()
	attacker, victim := e.issue("high"), e.issue("high")
	srv := e.srvs[0]
	for i := 0; i < 9; i++ {
		openBody(t, url, attacker, 32<<20, "{")
	}
	until(t, "the nine bodies being read", func() bool { return srv.inflight.InUse() >= 9*64<<10 })
	if got := srv.inflight.InUse(); got > 9*64<<10 {
		t.Fatalf("nine bodies that sent one byte each hold %d bytes of the budget", got)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/messages", strings.NewReader(msgBody("claude-sonnet-4-5", false)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", victim)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("another key's request: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("another key's request: %d %s", resp.StatusCode, b)
	}
}

// A body that trickles slower than BODY_MIN_RATE once BODY_RATE_GRACE has
// passed gets 408, and gives its room in the budget back.
func TestTricklingBodyGets408(t *testing.T) {
	e := newEnv(t, withServerConfig(func(c *Config) {
		c.BodyRateGrace = 200 * time.Millisecond
		c.BodyReadTimeout = time.Minute
	}))
	e.apiAccount("high", "h1")
	url := e.start()
	key := e.issue("high")
	c := openBody(t, url, key, 1<<20, `{"model":"claude-sonnet-4-5",`)
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	t0 := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
	}
	if took := time.Since(t0); took > 10*time.Second {
		t.Fatalf("408 after %s: the minimum rate did not apply (BODY_READ_TIMEOUT is a minute)", took)
	}
	srv := e.srvs[0]
	until(t, "the stalled body's room given back", func() bool { return srv.inflight.InUse() == 0 })
}

// The minimum rate's deadline: the whole body's timeout, or the moment the
// bytes read fall below the rate after the grace, whichever comes first.
func TestBodyDeadline(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	read := start.Add(2 * time.Second) // began reading after a wait for a place
	lim := bodyLimits{timeout: time.Minute, rate: 64 << 10, grace: 5 * time.Second}
	cases := []struct {
		name      string
		lim       bodyLimits
		rateStart time.Time
		read      int64
		want      time.Time
		slow      bool
	}{
		{"before the first read: the timeout", lim, time.Time{}, 0, start.Add(time.Minute), false},
		{"nothing read: the grace", lim, read, 0, read.Add(5 * time.Second), true},
		{"each 64 KiB buys a second", lim, read, 640 << 10, read.Add(15 * time.Second), true},
		{"the timeout when it comes first", lim, read, 64 << 20, start.Add(time.Minute), false},
		{"no rate", bodyLimits{timeout: time.Minute}, read, 0, start.Add(time.Minute), false},
		{"no timeout", bodyLimits{rate: 64 << 10, grace: time.Second}, read, 64 << 10, read.Add(2 * time.Second), true},
		{"neither", bodyLimits{}, read, 0, time.Time{}, false},
	}
	for _, c := range cases {
		d, slow := c.lim.deadline(start, c.rateStart, c.read)
		if !d.Equal(c.want) || slow != c.slow {
			t.Errorf("%s: %v %v, want %v %v", c.name, d, slow, c.want, c.slow)
		}
	}
}

// Issue 24: count_tokens took a concurrency place, so the bursts editor
// clients send hit the limit: 40 concurrent calls on a trial key
// (concurrency 2) gave 8 × 200 and 32 × 429. It takes none now, is never
// counted, and is still authenticated.
func TestCountTokensBurstOnTrialKey(t *testing.T) {
	e := newEnv(t)
	apiKey := e.apiAccount("trial", "t1")
	url := e.start()
	key := e.issue("trial")
	// Every call is held upstream until all 40 are there: at once in flight.
	hold := make(chan struct{})
	e.fake.InjectFault(apiKey, fakeupstream.Fault{Path: "/v1/messages/count_tokens", Hold: hold, Times: 40})
	statuses := make(chan int, 40)
	for i := 0; i < 40; i++ {
		go func() {
			statuses <- post(t, url, "/v1/messages/count_tokens", key, msgBody("claude-sonnet-4-5", false)).status
		}()
	}
	until(t, "40 count_tokens in flight upstream", func() bool { return e.fake.InFlight() == 40 })
	close(hold)
	for i := 0; i < 40; i++ {
		if st := <-statuses; st != http.StatusOK {
			t.Fatalf("count_tokens %d: %d", i, st)
		}
	}
	if r := post(t, url, "/v1/messages/count_tokens", "sk-cli-v1-"+strings.Repeat("Q", 32), msgBody("claude-sonnet-4-5", false)); r.status != http.StatusUnauthorized {
		t.Fatalf("count_tokens with an unknown key: %d", r.status)
	}
	// Never counted: the first message of the key has the whole quota
	// less itself.
	if r := post(t, url, "/v1/messages", key, msgBody("claude-sonnet-4-5", false)); r.status != http.StatusOK ||
		r.header.Get("X-Ratelimit-Remaining") != "41" {
		t.Fatalf("a message after 40 count_tokens: %d remaining %q", r.status, r.header.Get("X-Ratelimit-Remaining"))
	}
}
