// claude-route dashboard pictures: a 24-hour line chart and meters, drawn as
// inline SVG and plain elements. No library, no CDN: the page's CSP allows
// scripts and styles from this server only. Same rules as app.js: values
// reach the DOM as text or attributes, never as markup; sizes are SVG
// attributes or CSSOM writes, never style attributes.
'use strict';

window.CRCharts = (() => {
  const NS = 'http://www.w3.org/2000/svg';
  const nf = new Intl.NumberFormat();
  const pad = (n) => String(n).padStart(2, '0');

  function svg(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  // Geometry of every chart, in SVG user units (the element scales to its box).
  const W = 640;
  const H = 150;
  const PAD = { left: 56, right: 10, top: 10, bottom: 24 };
  // An x label every 6 hours of 5-minute buckets.
  const LABEL_EVERY = 72;

  // hhmm is a bucket start in UTC: every replica and operator reads the same.
  const hhmm = (iso) => {
    const d = new Date(iso);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  };

  // lineChart draws one metric ("requests" or "tokens") of a series of
  // points ({start, requests, tokens}, oldest first) as an <svg>. Its
  // data-points and data-max attributes say what it drew, for tests and
  // for screen readers (aria-label).
  function lineChart(points, metric, title, testid) {
    const vals = points.map((p) => Number(p[metric]) || 0);
    const n = vals.length;
    const max = n ? Math.max(...vals) : 0;
    const top = max > 0 ? max : 1;
    const iw = W - PAD.left - PAD.right;
    const ih = H - PAD.top - PAD.bottom;
    const x = (i) => PAD.left + (n > 1 ? (i * iw) / (n - 1) : 0);
    const y = (v) => PAD.top + ih * (1 - v / top);
    const total = vals.reduce((a, b) => a + b, 0);

    const root = svg('svg', {
      class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-testid': testid,
      'data-points': n, 'data-max': max, 'data-total': total,
      'aria-label': `${title}: ${nf.format(total)} in the last 24 hours, at most ${nf.format(max)} per 5 minutes`,
    });
    root.append(svg('title', {}, title));
    // Axes: a base line and a top line at the maximum.
    root.append(svg('line', { class: 'chart-axis', x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0) }));
    root.append(svg('line', { class: 'chart-grid', x1: PAD.left, x2: W - PAD.right, y1: y(top), y2: y(top) }));
    root.append(svg('text', { class: 'chart-label', 'data-testid': 'chart-label-y', x: PAD.left - 6, y: y(top) + 4, 'text-anchor': 'end' }, nf.format(max)));
    root.append(svg('text', { class: 'chart-label', 'data-testid': 'chart-label-y', x: PAD.left - 6, y: y(0) + 4, 'text-anchor': 'end' }, '0'));
    // x labels: the first bucket, then every 6 hours, the last one "now".
    for (let i = 0; i < n; i += LABEL_EVERY) {
      root.append(svg('text', { class: 'chart-label', 'data-testid': 'chart-label-x', x: x(i), y: H - 6, 'text-anchor': i === 0 ? 'start' : 'middle' }, hhmm(points[i].start)));
    }
    if (n > 0) {
      root.append(svg('text', { class: 'chart-label', 'data-testid': 'chart-label-x', x: x(n - 1), y: H - 6, 'text-anchor': 'end' }, 'now'));
    }
    // The line, and the area under it for weight.
    const coords = vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    if (n > 0) {
      root.append(svg('polygon', { class: 'chart-area', points: `${x(0).toFixed(1)},${y(0)} ${coords.join(' ')} ${x(n - 1).toFixed(1)},${y(0)}` }));
      root.append(svg('polyline', { class: 'chart-line chart-' + metric, 'data-testid': testid + '-line', points: coords.join(' ') }));
    }
    return root;
  }

  // meter is a horizontal bar for a fraction 0–1 (utilization, slots),
  // with its value as text beside it.
  function meter(frac, testid, label, text) {
    const f = Math.max(0, Math.min(1, Number(frac) || 0));
    const pct = Math.round(f * 100);
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.setAttribute('role', 'meter');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.setAttribute('aria-label', label);
    bar.setAttribute('data-testid', testid);
    bar.setAttribute('data-value', String(pct));
    const fill = document.createElement('span');
    fill.className = 'bar-fill' + (pct >= 100 ? ' full' : pct >= 80 ? ' high' : '');
    fill.style.width = pct + '%'; // CSSOM: allowed under style-src 'self'
    bar.append(fill);
    const wrap = document.createElement('span');
    wrap.className = 'meter';
    const cap = document.createElement('span');
    cap.className = 'muted small meter-label';
    cap.textContent = text === undefined ? `${label} ${pct}%` : text;
    wrap.append(bar, cap);
    return wrap;
  }

  return { lineChart, meter, LABEL_EVERY };
})();
