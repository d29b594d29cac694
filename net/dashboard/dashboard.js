// conclave's live dashboard: reads /dashboard/feed (Server-Sent Events, read with fetch()
// so that it can send `Authorization: Bearer KEY`), keeps the last MAX_POINTS frames and
// draws them: summary tiles, uPlot time series, the replica / cluster / GPU tables, the
// pending and firing alerts and the event log. No build step, no framework.
// Test hooks (tests/e2e/dashboard_test.mjs): window.conclaveDashboard, #conn[data-state],
// tr[data-replica="MODEL/ID"][data-state], [data-alert="NAME"][data-state],
// [data-chart="NAME"][data-points], #tokens-per-s.
'use strict';

(() => {
  const FEED_URL = '/dashboard/feed';
  const KEY_STORAGE = 'conclave.apiKey';
  const MAX_POINTS = 300;
  const MAX_EVENTS = 200;
  const BACKOFF_MS = [1000, 2000, 4000, 8000, 10000];
  const SILENCE_MS = 20000;  // no byte (frame or keepalive) for this long: reconnect
  const CHART_HEIGHT = 180;

  const $ = (id) => document.getElementById(id);

  // --- formatting -----------------------------------------------------------------------

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const DASH = '–';

  function fmtNum(v, digits) {
    if (!isNum(v)) return DASH;
    const a = Math.abs(v);
    if (digits !== undefined) return v.toFixed(digits);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    if (a >= 100 || a === 0) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    return v.toFixed(2);
  }

  function fmtInt(v) {
    return isNum(v) ? String(Math.round(v)) : DASH;
  }

  function fmtDur(s) {
    if (!isNum(s)) return DASH;
    const a = Math.abs(s);
    if (a === 0) return '0';
    if (a < 1e-3) return (s * 1e6).toFixed(0) + ' µs';
    if (a < 1) return (s * 1e3).toFixed(a < 0.01 ? 2 : a < 0.1 ? 1 : 0) + ' ms';
    if (a < 60) return s.toFixed(2) + ' s';
    return (s / 60).toFixed(1) + ' min';
  }

  function fmtPct(f, digits = 1) {
    return isNum(f) ? (f * 100).toFixed(digits) + ' %' : DASH;
  }

  function fmtBytes(b) {
    if (!isNum(b)) return DASH;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    let v = b;
    while (Math.abs(v) >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return (i === 0 ? v.toFixed(0) : v.toFixed(v >= 100 ? 0 : 1)) + ' ' + units[i];
  }

  function fmtUptime(s) {
    if (!isNum(s)) return DASH;
    s = Math.floor(s);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    const p2 = (n) => String(n).padStart(2, '0');
    if (d > 0) return `${d}d ${p2(h)}h ${p2(m)}m`;
    if (h > 0) return `${h}h ${p2(m)}m ${p2(sec)}s`;
    if (m > 0) return `${m}m ${p2(sec)}s`;
    return `${sec}s`;
  }

  function fmtAgo(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }

  function fmtClock(ms) {
    if (!isNum(ms)) return DASH;
    const d = new Date(ms);
    const p2 = (n) => String(n).padStart(2, '0');
    return `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
  }

  /// A DOM element: h('td', {class: 'num', dataset: {x: 1}}, 'text', child, ...).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style') el.style.cssText = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  function meter(fraction, cls) {
    const f = isNum(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
    return h('span', { class: 'meter inline' + (cls ? ' ' + cls : '') },
             h('span', { style: `width:${(f * 100).toFixed(1)}%` }));
  }

  function setText(id, text) {
    const el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  // --- state ---------------------------------------------------------------------------

  const frames = [];          // oldest first, at most MAX_POINTS, unique time_ms
  const events = [];          // newest first, at most MAX_EVENTS
  const seenEvents = new Set();
  let framesReceived = 0;
  let lastFrame = null;
  let lastFrameAt = 0;        // performance.now() of the last frame

  // --- charts --------------------------------------------------------------------------

  const PALETTE = ['#5b9dff', '#f5a524', '#ef5b6b', '#3ccf91', '#b18cff', '#22c3d6', '#ff7ab6', '#c6d64a'];
  const AXIS = '#8b95a5';
  const GRID = 'rgba(255,255,255,0.06)';

  const gpuSeries = (pick) => (f) => {
    const out = new Map();
    for (const g of f.gpus || []) {
      if (g && g.index !== undefined && g.index !== null) out.set(g.index, pick(g));
    }
    return out;
  };

  // Axis steps of byte plots: 1, 2, 4, 8, 16, ... MiB up to TiB (labels like 16 GiB, not 17.2).
  const BYTE_INCRS = Array.from({ length: 21 }, (_, i) => 2 ** (20 + i));

  /// Each chart: its name (the test hooks' name), how to format a value and what to draw.
  /// Fixed charts list their series; GPU charts have one series per device index seen.
  const CHART_DEFS = [
    {
      name: 'tokens', fmt: (v) => fmtNum(v), min0: true,
      series: [
        { label: 'completion', get: (f) => f.tokens && f.tokens.completion_per_s },
        { label: 'prompt', get: (f) => f.tokens && f.tokens.prompt_per_s },
      ],
    },
    {
      name: 'ttft', fmt: fmtDur, min0: true,
      series: ['p50', 'p90', 'p99'].map((p) => ({
        label: p, get: (f) => f.latency && f.latency.ttft && f.latency.ttft[p],
      })),
    },
    {
      name: 'tpot', fmt: fmtDur, min0: true,
      series: ['p50', 'p99'].map((p) => ({
        label: p, get: (f) => f.latency && f.latency.tpot && f.latency.tpot[p],
      })),
    },
    {
      name: 'queue', fmt: (v) => (isNum(v) && Number.isInteger(v) ? String(v) : fmtNum(v)), min0: true, integer: true,
      series: [
        { label: 'running', get: (f) => f.queue && f.queue.running },
        { label: 'waiting', get: (f) => f.queue && f.queue.waiting },
      ],
    },
    {
      name: 'kv', fmt: (v) => fmtPct(v, 1), axisFmt: (v) => fmtPct(v, 0), range: [0, 1], fill: true,
      series: [{ label: 'used', get: (f) => f.kv && f.kv.fraction }],
    },
    {
      name: 'tools', fmt: (v) => fmtNum(v), min0: true,
      series: [
        { label: 'calls', get: (f) => f.tools && f.tools.calls_per_s },
        { label: 'failures', get: (f) => f.tools && f.tools.failures_per_s, color: '#ef5b6b' },
      ],
    },
    { name: 'gpu_util', gpu: true, fmt: (v) => fmtPct(v, 0), range: [0, 1], perGpu: gpuSeries((g) => g.utilization) },
    { name: 'gpu_mem', gpu: true, fmt: fmtBytes, min0: true, incrs: BYTE_INCRS, perGpu: gpuSeries((g) => g.memory_used_bytes) },
    { name: 'gpu_power', gpu: true, fmt: (v) => (isNum(v) ? v.toFixed(0) + ' W' : DASH), min0: true, perGpu: gpuSeries((g) => g.power_w) },
  ];

  const charts = new Map();  // name -> {def, el, u, key, points}

  for (const def of CHART_DEFS) {
    const el = document.querySelector(`[data-chart="${def.name}"]`);
    charts.set(def.name, { def, el, card: el.closest('.chart-card'), u: null, key: '', points: 0 });
  }

  /// The chart's series ([{label, values}]) and x values (seconds) over `frames`.
  function chartData(def) {
    const xs = frames.map((f) => f.time_ms / 1000);
    if (!def.gpu) {
      return { xs, series: def.series.map((s) => ({ label: s.label, color: s.color, values: frames.map((f) => num(s.get(f))) })) };
    }
    const perFrame = frames.map(def.perGpu);
    const indices = [...new Set(perFrame.flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
    const names = new Map();
    for (const f of frames) for (const g of f.gpus || []) if (g && g.name) names.set(g.index, g.name);
    return {
      xs,
      series: indices.map((i) => ({
        label: `GPU ${i}`,
        values: perFrame.map((m) => num(m.get(i))),
        title: names.get(i),
      })),
    };
  }

  function lastValue(values) {
    for (let i = (values ? values.length : 0) - 1; i >= 0; i--) if (isNum(values[i])) return values[i];
    return null;
  }

  function num(v) {
    return isNum(v) ? v : null;
  }

  function yRange(def) {
    if (def.range) return () => def.range;
    return (u, min, max) => {
      if (!isNum(max)) return [0, 1];
      const lo = def.min0 ? Math.min(0, isNum(min) ? min : 0) : min;
      let hi = max;
      if (hi <= lo) hi = lo + (def.integer ? 1 : Math.max(Math.abs(lo) * 0.1, 1e-9));
      return [lo, hi + (hi - lo) * 0.08];
    };
  }

  function makeChart(c, data) {
    const def = c.def;
    const width = Math.max(120, Math.floor(c.el.clientWidth));
    // Off the plot (no cursor), the legend shows the latest value of each series.
    const legendValue = (fmt) => (u, v, sidx, idx) => fmt(idx === null || idx === undefined ? lastValue(u.data[sidx]) : v);
    const series = [{ value: legendValue((v) => (isNum(v) ? fmtClock(v * 1000) : DASH)) }];
    data.series.forEach((s, i) => {
      const stroke = s.color || PALETTE[i % PALETTE.length];
      series.push({
        label: s.label,
        stroke,
        width: 1.6,
        fill: def.fill ? stroke + '26' : undefined,
        points: { show: false },
        spanGaps: false,
        value: legendValue(def.fmt),
      });
    });
    const axisFont = '11px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif';
    const opts = {
      width,
      height: CHART_HEIGHT,
      series,
      padding: [10, null, null, null],
      legend: { live: true },
      cursor: { sync: { key: 'conclave' }, points: { size: 6 }, drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: yRange(def) } },
      axes: [
        {
          stroke: AXIS, font: axisFont, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1, size: 4 }, space: 80, size: 30,
          values: (u, vals) => {
            const span = vals.length > 1 ? vals[vals.length - 1] - vals[0] : 0;
            return vals.map((v) => (span > 3 * 3600 ? fmtClock(v * 1000).slice(0, 5) : fmtClock(v * 1000)));
          },
        },
        {
          stroke: AXIS, font: axisFont, grid: { stroke: GRID, width: 1 }, ticks: { show: false }, size: 62,
          space: 36,
          incrs: def.incrs || (def.integer ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] : undefined),
          values: (u, vals) => vals.map((v) => (def.axisFmt || def.fmt)(v)),
        },
      ],
    };
    c.u = new uPlot(opts, [data.xs, ...data.series.map((s) => s.values)], c.el);
    // The legend's GPU labels carry the device name as a tooltip.
    data.series.forEach((s, i) => {
      if (!s.title) return;
      const row = c.u.root.querySelectorAll('.u-legend .u-series')[i + 1];
      if (row) row.title = s.title;
    });
  }

  function updateChart(c) {
    const data = chartData(c.def);
    const visible = !c.def.gpu || gpusPresent;
    const key = data.series.map((s) => s.label).join('|');
    if (!visible || data.series.length === 0) {
      if (c.u) {
        c.u.destroy();
        c.u = null;
      }
      c.key = '';
      c.points = 0;
    } else if (c.el.clientWidth > 0) {
      if (c.u && c.key !== key) {
        c.u.destroy();
        c.u = null;
      }
      if (!c.u) {
        makeChart(c, data);
        c.key = key;
      } else {
        c.u.setData([data.xs, ...data.series.map((s) => s.values)]);
      }
      c.points = data.xs.length;
    }
    c.el.dataset.points = String(c.points);
  }

  let gpusPresent = false;

  function updateCharts() {
    const f = lastFrame;
    gpusPresent = !!(f && Array.isArray(f.gpus) && f.gpus.length > 0);
    for (const el of document.querySelectorAll('.gpu-chart')) el.hidden = !gpusPresent;
    $('gpu-note').hidden = gpusPresent || !f;
    for (const c of charts.values()) updateChart(c);
  }

  // Plots follow their container's width (the window, the grid's column count).
  let resizePending = false;
  const resizeObserver = new ResizeObserver(() => {
    if (resizePending) return;
    resizePending = true;
    requestAnimationFrame(() => {
      resizePending = false;
      for (const c of charts.values()) {
        const w = Math.floor(c.el.clientWidth);
        if (!c.u) {
          if (w > 0 && frames.length > 0) updateChart(c);
        } else if (w > 0 && Math.abs(c.u.width - w) >= 1) {
          c.u.setSize({ width: w, height: CHART_HEIGHT });
        }
      }
    });
  });
  for (const c of charts.values()) resizeObserver.observe(c.el);

  // --- the page's other parts ------------------------------------------------------------

  const REPLICA_STATES = ['starting', 'up', 'restarting', 'dead', 'stopped', 'draining', 'drained'];

  function renderHeader(f) {
    const srv = f.server || {};
    setText('version', srv.version ? `v${String(srv.version).replace(/^v/, '')}` : DASH);
    setText('uptime', fmtUptime(f.uptime_s));
    $('draining').hidden = !srv.draining;
    const models = $('models');
    models.replaceChildren(...(f.models || []).map((m) =>
      h('span', { class: 'chip', dataset: { state: m.state || '' }, title: `${m.name}: ${m.state}` },
        h('span', { class: 'dot' }), m.name, h('span', { class: 'chip-state' }, m.state))));
    const p = f.process || {};
    setText('process', isNum(p.resident_bytes) ? `process resident memory ${fmtBytes(p.resident_bytes)}` : '');
  }

  function renderTiles(f) {
    const t = f.tokens || {};
    const r = f.requests || {};
    const q = f.queue || {};
    const kv = f.kv || {};
    const ttft = (f.latency && f.latency.ttft) || {};
    setText('tokens-per-s', fmtNum(t.completion_per_s));
    setText('tokens-sub', `generated · prompt ${fmtNum(t.prompt_per_s)} tok/s`);
    setText('requests-per-s', fmtNum(r.per_s));
    setText('requests-sub', `${fmtInt(r.total)} total`);
    setText('active-queued', `${fmtInt(r.active)} / ${fmtInt(r.queued)}`);
    setText('active-sub', `engine: ${fmtInt(q.running)} running · ${fmtInt(q.waiting)} waiting`);
    setText('ttft-p99', fmtDur(ttft.p99));
    setText('ttft-sub', `p50 ${fmtDur(ttft.p50)} · ${fmtInt(ttft.count)} in window`);
    setText('kv-use', fmtPct(kv.fraction));
    $('kv-meter').style.width = `${(Math.min(1, Math.max(0, isNum(kv.fraction) ? kv.fraction : 0)) * 100).toFixed(1)}%`;
    $('kv-meter').parentElement.dataset.level = !isNum(kv.fraction) ? '' : kv.fraction > 0.9 ? 'high' : kv.fraction > 0.7 ? 'mid' : '';
    setText('kv-sub', `${fmtInt(kv.used_blocks)} / ${fmtInt(kv.total_blocks)} blocks`);
    setText('error-rate', fmtNum(r.errors_per_s));
    const share = isNum(r.errors_per_s) && isNum(r.per_s) && r.per_s > 0 ? ` · ${fmtPct(r.errors_per_s / r.per_s)} of requests` : '';
    setText('errors-sub', `${fmtInt(r.errors_total)} total${share}`);
    $('errors-tile').classList.toggle('bad', isNum(r.errors_per_s) && r.errors_per_s > 0);
  }

  function renderReplicas(f) {
    const reps = f.replicas || [];
    const rows = reps.map((r) => {
      const state = r.state || 'unknown';
      const kvFrac = isNum(r.kv_used) && isNum(r.kv_total) && r.kv_total > 0 ? r.kv_used / r.kv_total : null;
      const healthy = r.healthy === true ? h('span', { class: 'yes' }, '✓ yes') : r.healthy === false ? h('span', { class: 'no' }, '✗ no') : DASH;
      return h('tr', { dataset: { replica: `${r.model}/${r.id}`, state } },
        h('td', {}, r.model ?? DASH),
        h('td', { class: 'num' }, fmtInt(r.id)),
        h('td', {}, h('span', { class: `state state-${REPLICA_STATES.includes(state) ? state : 'unknown'}` }, state)),
        h('td', {}, healthy),
        h('td', {}, r.backend || DASH),
        h('td', { class: 'num' }, fmtInt(r.running)),
        h('td', { class: 'num' }, fmtInt(r.waiting)),
        h('td', { class: 'kvcell' }, meter(kvFrac), h('span', { class: 'num' }, `${fmtInt(r.kv_used)} / ${fmtInt(r.kv_total)}`)),
        h('td', { class: 'num' + (isNum(r.restarts) && r.restarts > 0 ? ' warn' : '') }, fmtInt(r.restarts)),
        h('td', { class: 'err', title: r.last_error || '' }, r.last_error || ''));
    });
    $('replicas').tBodies[0].replaceChildren(...rows);
    $('replicas').hidden = rows.length === 0;
    $('replicas-empty').hidden = rows.length > 0;
    const up = reps.filter((r) => r.state === 'up').length;
    setText('replicas-count', reps.length ? `${up} of ${reps.length} up` : '');
  }

  function renderCluster(f) {
    const c = f.cluster || {};
    $('cluster-card').hidden = !c.enabled;
    if (!c.enabled) return;
    const nodes = c.nodes || [];
    const rows = nodes.map((n) => {
      const counts = new Map();
      for (const g of n.gpus || []) counts.set(g, (counts.get(g) || 0) + 1);
      const gpus = [...counts].map(([name, k]) => (k > 1 ? `${k}× ${name}` : name)).join(', ');
      return h('tr', { dataset: { node: String(n.id) } },
        h('td', { class: 'num' }, fmtInt(n.id)),
        h('td', {}, n.host || DASH),
        h('td', { class: 'num' }, fmtInt(n.ranks)),
        h('td', {}, gpus || DASH),
        h('td', { class: 'num' }, fmtInt(n.slots_used)));
    });
    $('cluster').tBodies[0].replaceChildren(...rows);
    $('cluster').hidden = rows.length === 0;
    $('cluster-empty').hidden = rows.length > 0;
    setText('cluster-meta', `${nodes.length} node${nodes.length === 1 ? '' : 's'} · joins ${fmtInt(c.joins)} · losses ${fmtInt(c.losses)}`);
  }

  function renderGpus(f) {
    const gpus = f.gpus || [];
    const rows = gpus.map((g) => {
      const memFrac = isNum(g.memory_used_bytes) && isNum(g.memory_total_bytes) && g.memory_total_bytes > 0
        ? g.memory_used_bytes / g.memory_total_bytes : null;
      const ecc = `${fmtInt(g.ecc_corrected)} / ${fmtInt(g.ecc_uncorrected)}`;
      return h('tr', { dataset: { gpu: String(g.index) } },
        h('td', { class: 'num' }, fmtInt(g.index)),
        h('td', { class: 'name' }, g.name || DASH),
        h('td', { class: 'barcell' }, meter(g.utilization), h('span', { class: 'num' }, fmtPct(g.utilization, 0))),
        h('td', { class: 'barcell' }, meter(memFrac), h('span', { class: 'num' }, `${fmtBytes(g.memory_used_bytes)} / ${fmtBytes(g.memory_total_bytes)}`)),
        h('td', { class: 'num' + (isNum(g.temperature_c) && g.temperature_c >= 85 ? ' bad' : '') }, isNum(g.temperature_c) ? `${g.temperature_c.toFixed(0)} °C` : DASH),
        h('td', { class: 'num' }, isNum(g.power_w) ? `${g.power_w.toFixed(0)} W` : DASH),
        h('td', { class: 'num' + (isNum(g.ecc_uncorrected) && g.ecc_uncorrected > 0 ? ' bad' : '') }, ecc));
    });
    $('gpus').tBodies[0].replaceChildren(...rows);
    $('gpus').hidden = rows.length === 0;
    $('gpus-empty').hidden = rows.length > 0;
    setText('gpus-count', gpus.length ? `${gpus.length} device${gpus.length === 1 ? '' : 's'}` : '');
  }

  function renderAlerts(f) {
    const alerts = (f.alerts || []).filter((a) => a && (a.state === 'firing' || a.state === 'pending'));
    // Firing before pending, critical before warning, then by name.
    const sev = (s) => ({ critical: 0, error: 1, warning: 2, info: 3 }[s] ?? 4);
    alerts.sort((a, b) => (a.state === b.state ? 0 : a.state === 'firing' ? -1 : 1) || sev(a.severity) - sev(b.severity) ||
                          String(a.name).localeCompare(String(b.name)));
    const now = isNum(f.time_ms) ? f.time_ms : Date.now();
    const items = alerts.map((a) => {
      const since = isNum(a.since_ms) ? `${a.state} for ${fmtAgo(now - a.since_ms)}` : a.state;
      const vt = [isNum(a.value) ? `value ${fmtNum(a.value)}` : null,
                  isNum(a.threshold) ? `threshold ${fmtNum(a.threshold)}` : null].filter(Boolean).join(' · ');
      return h('li', { class: `alert sev-${a.severity || 'info'}`, dataset: { alert: a.name, state: a.state, severity: a.severity || '' } },
        h('div', { class: 'alert-main' },
          h('span', { class: `alert-state ${a.state}` }, a.state),
          h('span', { class: 'alert-name' }, a.name),
          h('span', { class: 'alert-sev' }, a.severity || ''),
          a.rule ? h('span', { class: 'alert-rule' }, a.rule) : null),
        h('div', { class: 'alert-summary' }, a.summary || ''),
        h('div', { class: 'alert-meta' }, [since, vt].filter(Boolean).join(' · ')));
    });
    $('alerts').replaceChildren(...items);
    $('alerts-empty').hidden = items.length > 0;
    const firing = alerts.filter((a) => a.state === 'firing').length;
    setText('alerts-count', items.length ? `${firing} firing · ${items.length - firing} pending` : '');
    document.body.classList.toggle('has-firing', firing > 0);
  }

  function addEvents(list) {
    let added = false;
    for (const e of list || []) {
      if (!e) continue;
      const key = `${e.time_ms}|${e.kind}|${e.text}`;
      if (seenEvents.has(key)) continue;
      seenEvents.add(key);
      events.push(e);
      added = true;
    }
    if (!added) return;
    events.sort((a, b) => (b.time_ms ?? 0) - (a.time_ms ?? 0));
    while (events.length > MAX_EVENTS) {
      const e = events.pop();
      seenEvents.delete(`${e.time_ms}|${e.kind}|${e.text}`);
    }
    $('events').replaceChildren(...events.map((e) =>
      h('li', { dataset: { eventKind: e.kind || '' } },
        h('time', { datetime: isNum(e.time_ms) ? new Date(e.time_ms).toISOString() : '' }, fmtClock(e.time_ms)),
        h('span', { class: `kind kind-${/^[a-z_]+$/.test(e.kind || '') ? e.kind : 'other'}` }, e.kind || 'event'),
        h('span', { class: 'text' }, e.text || ''))));
    $('events-empty').hidden = events.length > 0;
    setText('events-count', `${events.length}`);
  }

  // --- frames ----------------------------------------------------------------------------

  function insertFrame(f) {
    if (!f || typeof f !== 'object' || !isNum(f.time_ms)) return false;
    framesReceived++;
    const last = frames[frames.length - 1];
    if (!last || f.time_ms > last.time_ms) {
      frames.push(f);
    } else {
      // Out of order or a repeat (a history replayed after a reconnect): keep one per time.
      const i = frames.findIndex((x) => x.time_ms >= f.time_ms);
      if (frames[i].time_ms === f.time_ms) frames[i] = f;
      else frames.splice(i, 0, f);
    }
    while (frames.length > MAX_POINTS) frames.shift();
    if (!lastFrame || f.time_ms >= lastFrame.time_ms) {
      lastFrame = f;
      lastFrameAt = performance.now();
    }
    addEvents(f.events);
    return true;
  }

  function render() {
    const f = lastFrame;
    if (!f) return;
    renderHeader(f);
    renderTiles(f);
    renderAlerts(f);
    renderReplicas(f);
    renderCluster(f);
    renderGpus(f);
    updateCharts();
    renderUpdated();
  }

  function renderUpdated() {
    if (!lastFrame) return;
    const age = performance.now() - lastFrameAt;
    const interval = (isNum(lastFrame.interval_s) ? lastFrame.interval_s : 1) * 1000;
    const stale = age > Math.max(5000, 4 * interval);
    setText('updated', stale ? `last frame ${fmtAgo(age)} ago` : `at ${fmtClock(lastFrame.time_ms)}`);
    $('updated').classList.toggle('stale', stale);
  }

  function onEvent(type, data) {
    if (type !== 'history' && type !== 'frame') return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      console.warn('dashboard: a feed event is not JSON', e);
      return;
    }
    if (type === 'history') for (const f of (msg && msg.frames) || []) insertFrame(f);
    else insertFrame(msg);
    render();
  }

  // --- the feed: fetch + a Server-Sent Events parser --------------------------------------

  /// Splits a text/event-stream into events (type, data); `push` takes decoded text in
  /// chunks of any size (an event, a line or a CRLF pair may span chunks).
  class SseParser {
    constructor(onEvent, onComment) {
      this.buf = '';
      this.type = '';
      this.data = [];
      this.onEvent = onEvent;
      this.onComment = onComment;
    }

    push(text) {
      this.buf += text;
      let i = 0;
      for (;;) {
        const n = this.buf.indexOf('\n', i);
        const r = this.buf.indexOf('\r', i);
        const j = n < 0 ? r : r < 0 ? n : Math.min(n, r);
        if (j < 0) break;
        let next = j + 1;
        if (this.buf.charCodeAt(j) === 13) {
          if (j + 1 >= this.buf.length) break;  // a CR at the end: wait for a possible LF
          if (this.buf.charCodeAt(j + 1) === 10) next = j + 2;
        }
        this.line(this.buf.slice(i, j));
        i = next;
      }
      this.buf = this.buf.slice(i);
    }

    line(l) {
      if (l === '') {
        if (this.data.length > 0) this.onEvent(this.type || 'message', this.data.join('\n'));
        this.type = '';
        this.data = [];
        return;
      }
      if (l.charCodeAt(0) === 58) {  // ':' comment, e.g. keepalive
        if (this.onComment) this.onComment(l.slice(1).trim());
        return;
      }
      const c = l.indexOf(':');
      const field = c < 0 ? l : l.slice(0, c);
      let value = c < 0 ? '' : l.slice(c + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
      if (field === 'event') this.type = value;
      else if (field === 'data') this.data.push(value);
      // id and retry: not needed (the history event replays what a reconnect missed)
    }
  }

  let connState = 'connecting';
  let attempt = 0;
  let retryTimer = null;
  let countdownTimer = null;
  let controller = null;

  function setConn(state, text) {
    connState = state;
    const el = $('conn');
    el.dataset.state = state;
    el.querySelector('.conn-text').textContent = text || state;
  }

  function apiKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || '';
    } catch {
      return '';
    }
  }

  function showAuth(rejected) {
    $('auth').hidden = false;
    $('auth-error').hidden = !rejected;
    setConn('unauthorized', 'API key needed');
    const input = $('api-key');
    if (document.activeElement !== input) input.focus({ preventScroll: true });
  }

  $('auth-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('api-key').value.trim();
    if (!key) return;
    try {
      localStorage.setItem(KEY_STORAGE, key);
    } catch {
      // private mode: the key lives only as long as this connection attempt
      memoryKey = key;
    }
    $('api-key').value = '';
    $('auth').hidden = true;
    attempt = 0;
    connect();
  });
  let memoryKey = '';

  function scheduleReconnect(why) {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    const delay = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    attempt++;
    const due = performance.now() + delay;
    const show = () => setConn('reconnecting', `reconnecting in ${Math.max(1, Math.ceil((due - performance.now()) / 1000))} s`);
    show();
    countdownTimer = setInterval(show, 250);
    if (why) $('conn').title = why;
    retryTimer = setTimeout(() => {
      clearInterval(countdownTimer);
      connect();
    }, delay);
  }

  async function connect() {
    clearTimeout(retryTimer);
    clearInterval(countdownTimer);
    if (controller) controller.abort();
    const ctl = new AbortController();
    controller = ctl;
    if (connState !== 'reconnecting') setConn('connecting', 'connecting');
    const key = apiKey() || memoryKey;
    const headers = { Accept: 'text/event-stream' };
    if (key) headers.Authorization = `Bearer ${key}`;
    let silence = null;
    const arm = () => {
      clearTimeout(silence);
      silence = setTimeout(() => ctl.abort(new DOMException('the feed went silent', 'TimeoutError')), SILENCE_MS);
    };
    try {
      arm();
      const res = await fetch(FEED_URL, { headers, cache: 'no-store', signal: ctl.signal });
      if (res.status === 401) {
        clearTimeout(silence);
        ctl.abort();
        showAuth(key !== '');
        return;
      }
      if (!res.ok || !res.body) throw new Error(`the feed answered ${res.status}`);
      $('auth').hidden = true;
      $('conn').title = '';
      const parser = new SseParser((type, data) => {
        if (controller !== ctl) return;
        if (connState !== 'live') setConn('live', 'live');
        attempt = 0;
        onEvent(type, data);
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        arm();
        parser.push(decoder.decode(value, { stream: true }));
      }
      parser.push(decoder.decode() + '\n\n');
      clearTimeout(silence);
      if (controller === ctl) scheduleReconnect('the feed ended');
    } catch (e) {
      clearTimeout(silence);
      if (controller !== ctl) return;  // replaced by a newer connection
      scheduleReconnect(String((e && e.message) || e));
    }
  }

  setInterval(renderUpdated, 1000);

  window.conclaveDashboard = {
    get framesReceived() {
      return framesReceived;
    },
    get lastFrame() {
      return lastFrame;
    },
    points(name) {
      const c = charts.get(name);
      return c ? c.points : 0;
    },
    charts: CHART_DEFS.map((d) => d.name),
    /// Feeds one SSE-formatted text chunk to a fresh parser (for tests of the parser).
    parseSse(text) {
      const out = [];
      const p = new SseParser((type, data) => out.push({ type, data }));
      p.push(text);
      return out;
    },
  };

  connect();
})();
