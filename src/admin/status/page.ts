/**
 * The status page: one self-contained HTML document (inline CSS and vanilla JS, no external assets, no
 * build step), kept in a .ts module so tsc carries it into dist. It opens `status/events` (relative,
 * so it also works behind a path prefix) and redraws on each snapshot. Every string from the gateway
 * (pod names come from Kubernetes) reaches the DOM through textContent or setAttribute, never as markup.
 * The CSP allows exactly this script and this style (by hash) and connections to the same origin.
 */
import { createHash } from 'node:crypto';

const style = String.raw`
:root{--bg:#f3f5f8;--card:#fff;--line:#e2e7ee;--ink:#1c2330;--mute:#6b7585;--ok:#16a34a;--warn:#d97706;--bad:#dc2626;--info:#2563eb;--bar:#3b82f6;--share:#0f9f8f}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;font-variant-numeric:tabular-nums}
header{display:flex;gap:16px;align-items:center;padding:10px 24px;background:#1c2330;color:#fff}
header h1{font-size:16px;margin:0;font-weight:600}header h1 span{color:#9aa4b2;font-weight:400}
#conn{padding:2px 10px;border-radius:10px;font-size:12px;background:#4b5563}#conn.live{background:var(--ok)}#conn.down{background:var(--bad)}
#info{margin-left:auto;color:#9aa4b2;font-size:12px}
main{max-width:1280px;margin:0 auto;padding:16px 24px}
.pool{background:var(--card);border:1px solid var(--line);border-radius:10px;margin-bottom:18px;padding:14px 18px}
.ph{display:flex;align-items:baseline;gap:12px;flex-wrap:wrap}.ph h2{margin:0;font-size:18px}.meta{color:var(--mute);font-size:12px}
.tag{font-size:11px;padding:1px 7px;border-radius:9px;background:#fde68a;color:#78350f}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(148px,1fr));gap:10px;margin:12px 0}
.kpi{border:1px solid var(--line);border-radius:8px;padding:7px 10px}
.kpi b{display:block;font-size:11px;color:var(--mute);font-weight:500;text-transform:uppercase;letter-spacing:.04em}
.kpi .v{font-size:20px;font-weight:600}.kpi .s{font-size:11px;color:var(--mute);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.kpi.warn .v{color:var(--warn)}.kpi.bad .v{color:var(--bad)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:10px;margin-bottom:12px}
.chart{border:1px solid var(--line);border-radius:8px;padding:6px 10px 4px}
.chart .hd{display:flex;justify-content:space-between;font-size:11px;color:var(--mute)}.chart .hd span:last-child{color:var(--ink);font-weight:600}
.chart svg{display:block;width:100%;height:46px}.chart .ft{display:flex;justify-content:space-between;font-size:10px;color:var(--mute)}
table{width:100%;border-collapse:collapse}
th{font-size:11px;text-transform:uppercase;letter-spacing:.04em;color:var(--mute);font-weight:500;text-align:left;padding:6px 8px;border-bottom:2px solid var(--line)}
td{padding:7px 8px;border-bottom:1px solid var(--line);vertical-align:middle;white-space:nowrap}
tr:last-child td{border-bottom:0}th.n,td.n{text-align:right}
.pod{font-weight:600}.sub{display:block;font-size:11px;color:var(--mute);font-weight:400}
.st{font-size:11px;font-weight:600;padding:2px 8px;border-radius:9px;text-transform:uppercase;letter-spacing:.03em;background:#e5e7eb;color:#374151}
.st-ready{background:#dcfce7;color:#166534}.st-draining{background:#fef3c7;color:#92400e}.st-ejected{background:#fee2e2;color:#991b1b}.st-not-ready{background:#ffedd5;color:#9a3412}.st-slow-starting{background:#dbeafe;color:#1e40af}
.slots{display:inline-flex;gap:2px;vertical-align:middle;margin-right:6px}.slots i{width:11px;height:14px;border-radius:2px;background:#e5e7eb}.slots i.on{background:var(--bar)}
.track{display:inline-block;vertical-align:middle;width:150px;height:12px;background:#eef1f5;border-radius:6px;overflow:hidden;margin-right:8px}
.track i{display:block;height:100%;background:var(--share);border-radius:6px}.track i.low{background:#f59e0b}
.slow{color:var(--warn);font-weight:600}.err{color:var(--bad)}.q{color:var(--warn);font-size:11px;margin-left:4px}
.empty{color:var(--mute);padding:10px 0}
footer{max-width:1280px;margin:0 auto;padding:0 24px 24px;color:var(--mute);font-size:12px}
`;

const rawScript = String.raw`
'use strict';
var MAX = 300, hist = {}, timer = 0;
var STATES = { ready: 1, 'not-ready': 1, draining: 1, ejected: 1, 'slow-starting': 1 };
function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = String(text); return e; }
function put(parent) { for (var i = 1; i < arguments.length; i++) if (arguments[i]) parent.appendChild(arguments[i]); return parent; }
function num(x, d) { return Number(x).toLocaleString('en-US', { maximumFractionDigits: d || 0 }); }
function rate(x) { return x == null ? '–' : x < 10 ? x.toFixed(1) : num(x); }
function ms(x) { return x == null ? '–' : x >= 1000 ? (x / 1000).toFixed(2) + ' s' : x < 10 ? x.toFixed(1) + ' ms' : Math.round(x) + ' ms'; }
function pct(x) { return x == null ? '–' : (x * 100).toFixed(1) + '%'; }
function merge(p) {
  var h = hist[p.name], s = p.history;
  if (!h || s.full) h = hist[p.name] = { q: [], r: [], p: [] };
  h.q = h.q.concat(s.queueLength).slice(-MAX); h.r = h.r.concat(s.requestRate).slice(-MAX); h.p = h.p.concat(s.p95Ms).slice(-MAX);
  return h;
}
function kpi(label, value, sub, cls) { return put(el('div', 'kpi' + (cls ? ' ' + cls : '')), el('b', '', label), el('div', 'v', value), el('div', 's', sub)); }
function spark(title, vals, fmt, color, floor) {
  var W = 300, H = 44, NS = 'http://www.w3.org/2000/svg', max = floor, last = null, i;
  var span = Math.min(MAX, Math.max(60, vals.length)), from = vals.length - Math.min(span, vals.length);
  for (i = from; i < vals.length; i++) if (vals[i] != null) { if (vals[i] > max) max = vals[i]; last = vals[i]; }
  var svg = document.createElementNS(NS, 'svg'); svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H); svg.setAttribute('preserveAspectRatio', 'none');
  var line = '', area = '', seg = [], step = W / (span - 1);
  function flush() {
    if (!seg.length) return;
    line += 'M' + seg.join('L');
    area += 'M' + seg[0].split(',')[0] + ',' + H + 'L' + seg.join('L') + 'L' + seg[seg.length - 1].split(',')[0] + ',' + H + 'Z';
    seg = [];
  }
  for (i = from; i < vals.length; i++) {
    if (vals[i] == null) { flush(); continue; }
    seg.push((W - (vals.length - 1 - i) * step).toFixed(1) + ',' + (H - 2 - (vals[i] / max) * (H - 4)).toFixed(1));
  }
  flush();
  var a = document.createElementNS(NS, 'path'); a.setAttribute('d', area || 'M0,0'); a.setAttribute('fill', color); a.setAttribute('fill-opacity', '0.15');
  var l = document.createElementNS(NS, 'path'); l.setAttribute('d', line || 'M0,0'); l.setAttribute('fill', 'none'); l.setAttribute('stroke', color);
  l.setAttribute('stroke-width', '1.6'); l.setAttribute('vector-effect', 'non-scaling-stroke'); l.setAttribute('stroke-linejoin', 'round');
  var b = document.createElementNS(NS, 'path'); b.setAttribute('d', 'M0,' + (H - 1) + 'H' + W); b.setAttribute('stroke', '#e2e7ee'); b.setAttribute('vector-effect', 'non-scaling-stroke');
  put(svg, b, a, l);
  var hd = put(el('div', 'hd'), el('span', '', title), el('span', '', fmt(last)));
  var ft = put(el('div', 'ft'), el('span', '', span < 120 ? 'last ' + span + ' s' : 'last ' + Math.round(span / 60) + ' min'), el('span', '', 'max ' + fmt(max)));
  return put(el('div', 'chart'), hd, svg, ft);
}
function slotsCell(e) {
  var td = el('td'), n = e.slots === 'unlimited' ? 0 : e.slots;
  if (n > 0 && n <= 16) {
    var box = el('span', 'slots');
    for (var i = 0; i < n; i++) box.appendChild(el('i', i < e.inflight ? 'on' : ''));
    td.appendChild(box);
  }
  td.appendChild(el('span', '', e.inflight + ' / ' + (n > 0 ? n : '∞'))).setAttribute('data-k', 'inflight');
  if (e.waiting > 0) td.appendChild(el('span', 'q', '+' + e.waiting + ' waiting'));
  return td;
}
function pool(p) {
  var h = merge(p), sec = el('section', 'pool'), eps = p.endpoints;
  sec.setAttribute('data-pool', p.name);
  var ready = eps.filter(function (e) { return e.state === 'ready'; }).length;
  put(sec, put(el('div', 'ph'), el('h2', '', p.name),
    el('span', 'meta', p.balancer + ' · ' + p.discovery + ' · ' + eps.length + ' pods, ' + ready + ' ready · ' + p.slotsPerEndpoint + ' slots per pod'),
    p.synced ? null : el('span', 'tag', 'discovery not synced')));
  var reasons = Object.keys(p.rejectRateByReason).map(function (k) { return k + ' ' + rate(p.rejectRateByReason[k]) + '/s'; }).join(', ');
  var k = put(el('div', 'kpis'),
    kpi('Requests / s', rate(p.requestRate), num(p.totals.requests) + ' total'),
    kpi('Rejected / s', rate(p.rejectRate), reasons || num(p.totals.rejected) + ' total', p.rejectRate > 0 ? 'bad' : ''),
    kpi('In flight', p.inflight + ' / ' + (p.slots === 'unlimited' ? '∞' : p.slots), 'slots on ready pods'),
    kpi('Queue', num(p.queueLength), 'limit ' + num(p.queueLimit), p.queueLength > 0 ? 'warn' : ''),
    kpi('Queue wait p95', p.queueWaitMs ? ms(p.queueWaitMs.p95) : '–', p.queueWaitMs ? 'p50 ' + ms(p.queueWaitMs.p50) : 'no requests'),
    kpi('Latency p95', p.durationMs ? ms(p.durationMs.p95) : '–', p.durationMs ? 'p50 ' + ms(p.durationMs.p50) : 'no requests'));
  var c = p.capacity;
  if (c && c.desiredPods != null) k.appendChild(kpi('Pods: now / desired', c.currentPods + ' / ' + num(c.desiredPods, 1),
    c.serviceMs == null ? 'no answer measured yet' : rate(c.ratePerS) + ' req/s × ' + ms(c.serviceMs) + ', ' + num(c.slots, 1) + ' slots',
    c.desiredReplicas > c.currentPods ? 'warn' : ''));
  if (p.totals.retries != null) k.appendChild(kpi('Retries / s', rate(p.retryRate), num(p.totals.retries) + ' total', p.retryRate > 0 ? 'warn' : ''));
  if (p.totals.ejections != null) k.appendChild(kpi('Ejections', num(p.totals.ejections), rate(p.ejectionRate) + ' / s', p.totals.ejections > 0 ? 'warn' : ''));
  sec.appendChild(k);
  put(sec, put(el('div', 'charts'),
    spark('Requests / s', h.r, rate, '#3b82f6', 1),
    spark('Queue length', h.q, function (x) { return x == null ? '–' : num(x); }, '#d97706', 1),
    spark('p95 latency', h.p, ms, '#7c3aed', 10)));
  if (!eps.length) { sec.appendChild(el('div', 'empty', 'No endpoints.')); return sec; }
  var lat = eps.filter(function (e) { return e.latencyMeasured && e.state !== 'ejected'; }).map(function (e) { return e.latencyEwmaMs; }).sort(function (a, b) { return a - b; });
  var median = lat.length ? lat[Math.floor((lat.length - 1) / 2)] : 0;
  var maxShare = Math.max.apply(null, eps.map(function (e) { return e.share || 0; }));
  var served = eps.reduce(function (s, e) { return s + e.requests; }, 0), fair = 1 / Math.max(1, ready);
  var t = el('table'), hr = el('tr');
  [['Pod'], ['State'], ['In flight / slots'], ['Latency EWMA', 'n'], ['Sticky', 'n'], ['Req / s', 'n'], ['Served', 'n'], ['Share of pool']].forEach(function (c) { hr.appendChild(el('th', c[1] || '', c[0])); });
  put(t, put(el('thead'), hr));
  var tb = el('tbody');
  eps.forEach(function (e) {
    var tr = el('tr'); tr.setAttribute('data-pod', e.pod);
    var host = e.url.replace(/^[a-z]+:[/][/]/, '');
    var name = put(el('td', 'pod', e.pod), host !== e.pod || e.zone ? el('span', 'sub', (host !== e.pod ? host : '') + (e.zone ? ' · ' + e.zone : '')) : null);
    var st = el('span', 'st st-' + (STATES[e.state] ? e.state : 'other'), e.state);
    var slow = e.latencyMeasured && lat.length > 1 && e.latencyEwmaMs > 1.5 * median;
    var latTd = el('td', 'n' + (slow ? ' slow' : ''), e.latencyMeasured ? ms(e.latencyEwmaMs) : '–');
    if (slow) latTd.title = (e.latencyEwmaMs / median).toFixed(1) + '× the pool median';
    var srv = put(el('td', 'n'), el('span', '', num(e.requests)), e.failures ? el('span', 'sub err', num(e.failures) + ' failed') : null);
    var low = served >= 20 && e.share != null && e.share < 0.6 * fair;
    var bar = el('i', low ? 'low' : ''); bar.style.width = (maxShare > 0 ? (100 * (e.share || 0)) / maxShare : 0).toFixed(1) + '%';
    var share = put(el('td', 'share'), put(el('span', 'track'), bar), el('span', low ? 'slow' : '', pct(e.share)));
    share.title = 'last ' + snapWindow + ' s: ' + pct(e.recentShare);
    var rt = el('td', 'n', rate(e.requestRate));
    srv.firstChild.setAttribute('data-k', 'served'); rt.setAttribute('data-k', 'rate'); share.lastChild.setAttribute('data-k', 'share');
    put(tb, put(tr, name, put(el('td'), st), slotsCell(e), latTd, el('td', 'n', num(e.sessions)), rt, srv, share));
  });
  put(sec, put(t, tb));
  return sec;
}
var snapWindow = 10;
function render(s) {
  snapWindow = s.windowSeconds;
  var main = document.getElementById('pools'), frag = document.createDocumentFragment();
  s.pools.forEach(function (p) { frag.appendChild(pool(p)); });
  if (!s.pools.length) frag.appendChild(el('div', 'empty', 'No pools configured.'));
  main.replaceChildren(frag);
  document.getElementById('info').textContent = 'updated ' + new Date(s.time).toLocaleTimeString() + ' · rates and percentiles over the last ' + s.windowSeconds + ' s · read-only';
  document.body.setAttribute('data-seq', String(s.seq));
}
function conn(cls, text) { var c = document.getElementById('conn'); c.className = cls; c.textContent = text; }
var es = new EventSource('status/events');
es.onopen = function () { conn('live', 'live'); };
es.onerror = function () { conn('down', 'reconnecting…'); };
es.onmessage = function (m) {
  conn('live', 'live');
  try { render(JSON.parse(m.data)); } catch (err) { conn('down', 'bad data'); }
};
`;

const script = rawScript.replace(/^\s+/gm, '');
const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

export const statusPageCsp = [
  "default-src 'none'",
  `script-src ${sha256(script)}`,
  `style-src ${sha256(style)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const statusPageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rasa-gateway status</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>
<header><h1>rasa-gateway <span>status</span></h1><span id="conn">connecting…</span><span id="info"></span></header>
<main id="pools"><noscript>This page needs JavaScript; the same data is at <a href="status.json">status.json</a>.</noscript></main>
<footer>Read-only view of the admin listener. Data: <a href="status.json">status.json</a> · <a href="metrics">metrics</a> · <a href="debug/pools">debug/pools</a></footer>
<script>${script}</script>
</body>
</html>
`;
