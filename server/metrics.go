package server

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/claude-route/claude-route/accounts"
	"github.com/claude-route/claude-route/keys"
)

// metrics live in a registry of the server's own (no global registry), so
// two servers in one test process do not collide.
type metrics struct {
	reg             *prometheus.Registry
	requests        *prometheus.CounterVec
	quotaRefusals   *prometheus.CounterVec
	capacity        *prometheus.CounterVec
	upstreamHeaders *prometheus.HistogramVec
	ttfb            *prometheus.HistogramVec
	activeStreams   prometheus.Gauge
	tokens          *prometheus.CounterVec
	refreshes       *prometheus.CounterVec
	syncs           *prometheus.CounterVec
	probes          *prometheus.CounterVec
	overflows       *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	buckets := []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 120, 300}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claude_route_requests_total",
			Help: "Customer requests by tier, model family and status."}, []string{"tier", "family", "status"}),
		quotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claude_route_quota_refusals_total",
			Help: "Requests refused by the 5-hour quota."}, []string{"tier", "family"}),
		capacity: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claude_route_capacity_refusals_total",
			Help: "Requests refused because the tier had no free or usable account."}, []string{"tier", "reason"}),
		upstreamHeaders: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "claude_route_upstream_latency_seconds",
			Help: "Time from sending upstream to its response headers.", Buckets: buckets}, []string{"tier"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "claude_route_time_to_first_byte_seconds",
			Help: "Time from receiving a request to its first answer byte.", Buckets: buckets}, []string{"tier"}),
		activeStreams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "claude_route_active_streams",
			Help: "Streamed answers in flight."}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claude_route_tokens_total",
			Help: "Tokens reported by the upstream."}, []string{"tier", "kind"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claude_route_refresh_total",
			Help: "OAuth refresh outcomes seen by this replica."}, []string{"outcome"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claude_route_sync_runs_total",
			Help: "Full syncs run by this replica."}, []string{"result"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claude_route_probes_total",
			Help: "Recovery probes of blacklisted accounts by result (recovered, an upstream status, unreachable)."}, []string{"result"}),
		overflows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "claude_route_overflow_total",
			Help: "Requests served by another account of the tier than the key's own, by reason."}, []string{"tier", "reason"}),
	}
	if lp, ok := s.d.Keys.(ledgerOwner); ok && lp.Ledger() != nil {
		led := lp.Ledger()
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "claude_route_ledger_pending_changes",
			Help: "Ledger changes of this replica not yet written (queued, or in the commit being fsynced); 0: every binding posted so far is in the ledger's files."},
			func() float64 { return float64(led.Pending()) }))
	}
	reg.MustRegister(m.probes, m.requests, m.quotaRefusals, m.capacity, m.upstreamHeaders, m.ttfb, m.activeStreams,
		m.tokens, m.refreshes, m.syncs, m.overflows, &poolCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ledgerOwner is a key store that writes through a ledger (keys.Store);
// test doubles need not.
type ledgerOwner interface{ Ledger() *keys.Ledger }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) request(tier, family string, status int) {
	m.requests.WithLabelValues(tier, family, strconv.Itoa(status)).Inc()
}

// RefreshOutcome counts a refresh result; the refresher reports through it.
func (s *Server) RefreshOutcome(outcome string) { s.metrics.refreshes.WithLabelValues(outcome).Inc() }

// ProbeResult counts a recovery probe's result.
func (s *Server) ProbeResult(result string) { s.metrics.probes.WithLabelValues(result).Inc() }

// SyncRun counts a sync run.
func (s *Server) SyncRun(ok bool) {
	s.forget() // what the sync changed holds here at once
	r := "ok"
	if !ok {
		r = "error"
	}
	s.metrics.syncs.WithLabelValues(r).Inc()
}

// poolCollector reports slot use, the blacklist and utilization from the
// store, so the figures are the cluster's, not this replica's. It reads
// them at most once per poolSnapshotTTL: a scraper (or several) polling
// fast must not turn into store load.
type poolCollector struct {
	s *Server

	mu   sync.Mutex
	at   time.Time
	view map[string][]accounts.AccountView
	err  error
}

const poolSnapshotTTL = 10 * time.Second

func (p *poolCollector) snapshot() (map[string][]accounts.AccountView, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.s.d.Clock.Now()
	if !p.at.IsZero() && now.Sub(p.at) < poolSnapshotTTL && now.After(p.at.Add(-time.Second)) {
		return p.view, p.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.view, p.err = p.s.d.Pool.ViewSlots(ctx, p.s.d.Tiers.Names(), p.s.slotsOf)
	p.at = now
	return p.view, p.err
}

var (
	slotsUsedDesc  = prometheus.NewDesc("claude_route_slots_used", "Slots taken per tier.", []string{"tier"}, nil)
	slotsTotalDesc = prometheus.NewDesc("claude_route_slots_total", "Slots offered by usable accounts per tier.", []string{"tier"}, nil)
	blacklistDesc  = prometheus.NewDesc("claude_route_blacklisted_accounts", "Blacklisted accounts per tier.", []string{"tier"}, nil)
	storeUpDesc    = prometheus.NewDesc("claude_route_store_up", "1 when the store answered the last pool read (at most 10 s old).", nil, nil)
	utilDesc       = prometheus.NewDesc("claude_route_account_utilization",
		"Latest upstream utilization per account and window (5h, 7d for subscriptions; requests, tokens for API keys), 0-1.",
		[]string{"account", "window"}, nil)
)

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- slotsUsedDesc
	ch <- slotsTotalDesc
	ch <- blacklistDesc
	ch <- storeUpDesc
	ch <- utilDesc
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	names := p.s.d.Tiers.Names()
	view, err := p.snapshot()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, 1)
	for _, t := range names {
		var used, total, bl float64
		for _, a := range view[t] {
			used += float64(a.SlotsUsed)
			if a.Blacklist != nil {
				bl++
			} else {
				total += float64(a.SlotsTotal)
			}
			if a.Utilization != nil {
				for w, v := range a.Utilization.Windows() {
					ch <- prometheus.MustNewConstMetric(utilDesc, prometheus.GaugeValue, v, a.Name, w)
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(slotsUsedDesc, prometheus.GaugeValue, used, t)
		ch <- prometheus.MustNewConstMetric(slotsTotalDesc, prometheus.GaugeValue, total, t)
		ch <- prometheus.MustNewConstMetric(blacklistDesc, prometheus.GaugeValue, bl, t)
	}
}

func (s *Server) slotsOf(tier string) int {
	if t, ok := s.d.Tiers.Get(tier); ok {
		return t.Slots
	}
	return 0
}

// routeMetrics are the figures package route reports.
type routeMetrics struct{ m *metrics }

func (r routeMetrics) Overflowed(tier, reason string) {
	r.m.overflows.WithLabelValues(tier, reason).Inc()
}

func (r routeMetrics) UpstreamHeaders(tier string, d time.Duration) {
	r.m.upstreamHeaders.WithLabelValues(tier).Observe(d.Seconds())
}

func (r routeMetrics) Streams(delta int) { r.m.activeStreams.Add(float64(delta)) }
