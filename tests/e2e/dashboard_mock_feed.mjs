// A stand-in for conclave's dashboard routes, for developing net/dashboard/ and for a quick
// browser test (dashboard_test.mjs --mock). No dependencies. It serves
//   GET /dashboard, /dashboard/        net/dashboard/index.html
//   GET /dashboard/assets/<file>       the other files of net/dashboard/ (not README.md)
//   GET /dashboard/feed                Server-Sent Events: `event: history` ({"frames":[...]})
//                                      then `event: frame` per tick, `: keepalive` comments
//   GET /health, /ready                200
//   POST /admin/fault                  {"replica":0,"fault":"crash_engine"}: replica 0 of
//                                      "tiny" restarts (as conclave with fault injection)
//   POST /mock/drop                    ends every open feed stream (tests reconnecting)
//   POST /v1/chat/completions          a short canned stream (for load generators)
// with synthetic frames: changing load, replica tiny/0 going down and coming back every
// 120 ticks (and on /admin/fault), a TTFT alert that goes pending, fires and resolves,
// autoscaler events, two GPUs and a two-node cluster.
// Usage: node dashboard_mock_feed.mjs [--port N] [--interval-ms MS] [--api-key KEY]
//                                     [--gpus N] [--no-cluster]
// Prints `listening on PORT` once listening; SIGTERM/SIGINT close it with exit 0.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}
const PORT = Number(opt('--port', '0'));
const INTERVAL_MS = Number(opt('--interval-ms', '1000'));
const API_KEY = opt('--api-key', '');
const GPU_COUNT = Number(opt('--gpus', '2'));
const CLUSTER = !args.includes('--no-cluster');
const DASH_DIR = path.resolve(import.meta.dirname, '../../net/dashboard');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.LICENSE': 'text/plain; charset=utf-8',
};

// --- the synthetic server ----------------------------------------------------------------

const HISTORY_FRAMES = 120;
const startMs = Date.now() - HISTORY_FRAMES * INTERVAL_MS;
let tick = 0;
const eventLog = [];  // newest last, at most 50
const frames = [];    // the last HISTORY_FRAMES frames, oldest first
const totals = { requests: 0, errors: 0, tools: 0, toolFailures: 0 };

const replicas = [
  { model: 'tiny', id: 0, state: 'up', healthy: true, backend: 'cuda', restarts: 0, last_error: '', downUntil: -1 },
  { model: 'tiny', id: 1, state: 'up', healthy: true, backend: 'cuda', restarts: 0, last_error: '', downUntil: -1 },
  { model: 'coder', id: 0, state: 'up', healthy: true, backend: 'cuda', restarts: 0, last_error: '', downUntil: -1 },
];
const alertState = new Map();  // name -> {state, since_ms}

function event(timeMs, kind, text) {
  eventLog.push({ time_ms: timeMs, kind, text });
  while (eventLog.length > 50) eventLog.shift();
}

function setReplicaState(r, state, timeMs, why) {
  if (r.state === state) return;
  event(timeMs, 'replica', `${r.model} replica ${r.id}: ${r.state} -> ${state}${why ? ` (${why})` : ''}`);
  r.state = state;
}

/// Restarts a replica: restarting for 8 ticks, then starting for 4, then up.
function crash(r, timeMs, why) {
  if (r.state !== 'up') return false;
  r.restarts++;
  r.healthy = false;
  r.last_error = why;
  r.downUntil = tick + 12;
  setReplicaState(r, 'restarting', timeMs, why);
  return true;
}

function updateAlert(name, rule, severity, cond, pendingTicks, timeMs, value, threshold, summary) {
  const a = alertState.get(name);
  if (!cond) {
    if (a) {
      event(timeMs, 'alert', `${name} resolved`);
      alertState.delete(name);
    }
    return;
  }
  if (!a) {
    const state = pendingTicks > 0 ? 'pending' : 'firing';
    alertState.set(name, { name, rule, severity, state, since_ms: timeMs, pendingUntil: tick + pendingTicks, value, threshold, summary });
    event(timeMs, 'alert', `${name} ${state}: ${summary}`);
    return;
  }
  Object.assign(a, { value, summary });
  if (a.state === 'pending' && tick >= a.pendingUntil) {
    a.state = 'firing';
    a.since_ms = timeMs;
    event(timeMs, 'alert', `${name} firing: ${summary}`);
  }
}

const round = (v, d = 3) => Math.round(v * 10 ** d) / 10 ** d;
const wave = (period, phase = 0) => 0.5 + 0.5 * Math.sin((2 * Math.PI * (tick + phase)) / period);
const jitter = (scale) => (Math.random() - 0.5) * scale;

function makeFrame() {
  const timeMs = startMs + tick * INTERVAL_MS;
  const cycle = tick % 120;
  // Replica tiny/0 crashes every 120 ticks (and on POST /admin/fault).
  if (cycle === 70) crash(replicas[0], timeMs, 'engine crashed: CUDA error 700 (illegal address)');
  for (const r of replicas) {
    if (r.downUntil >= 0 && tick >= r.downUntil - 4 && r.state === 'restarting') setReplicaState(r, 'starting', timeMs);
    if (r.downUntil >= 0 && tick >= r.downUntil) {
      setReplicaState(r, 'up', timeMs, 'restarted');
      r.healthy = true;
      r.downUntil = -1;
    }
  }
  const idle = tick % 90 >= 80;  // a quiet spell: no requests, so no latencies
  const load = idle ? 0 : 0.25 + 0.75 * wave(60);
  const upCount = replicas.filter((r) => r.state === 'up').length;
  const perS = idle ? 0 : round(2 + 6 * load + jitter(0.6), 2);
  const errorsPerS = idle ? 0 : cycle >= 70 && cycle < 74 ? round(0.6 + jitter(0.2), 2) : 0;
  totals.requests += Math.round(perS * INTERVAL_MS / 1000);
  totals.errors += Math.round(errorsPerS * INTERVAL_MS / 1000);
  const hot = cycle >= 20 && cycle < 60;  // TTFT climbs: HighTTFT pending, then firing
  const ttftBase = 0.045 + 0.03 * load + (hot ? 0.35 : 0);
  const lat = (base, spread) => (idle ? { p50: null, p90: null, p99: null, count: 0 } : {
    p50: round(base * (1 + jitter(0.1)), 4),
    p90: round(base * (1.8 + jitter(0.2)) * spread, 4),
    p99: round(base * (2.6 + jitter(0.3)) * spread, 4),
    count: Math.round(perS * 10),
  });
  const running = idle ? 0 : Math.round(4 + 18 * load);
  const waiting = idle ? 0 : Math.max(0, Math.round(12 * load - 6 + jitter(2)) + (upCount < 3 ? 5 : 0));
  const totalBlocks = 4096;
  const usedBlocks = Math.round(totalBlocks * (0.08 + 0.7 * load * (0.9 + jitter(0.05))));
  const toolCalls = idle ? 0 : round(0.4 * load + jitter(0.1) + 0.05, 2);
  const toolFailures = idle ? 0 : tick % 40 < 3 ? 0.1 : 0;
  totals.tools += Math.round(toolCalls * INTERVAL_MS / 1000);
  totals.toolFailures += toolFailures > 0 && tick % 40 === 0 ? 1 : 0;

  if (tick % 45 === 15) {
    event(timeMs, 'autoscaler', waiting > 8
      ? `adding a replica (queue ${waiting} > 8)`
      : `holding at ${upCount} replicas (utilisation ${round(load, 2)}, ${waiting} waiting)`);
  }
  if (tick % 100 === 50) event(timeMs, 'cluster', 'node 2 (gpu-b) rebalanced experts: max/mean load 1.42 -> 1.08');

  const ttft = lat(ttftBase, 1);
  const notUp = replicas.filter((r) => r.state !== 'up').length;
  updateAlert('ReplicaDown', 'replica_down', 'critical', notUp > 0, 0, timeMs, notUp, 0, `${notUp} replica(s) not up`);
  updateAlert('HighTTFT', 'ttft_p99', 'warning', hot && ttft.p99 !== null, 3, timeMs, ttft.p99 ?? 0, 0.25,
              `TTFT p99 ${round((ttft.p99 ?? 0) * 1000, 0)} ms > 250 ms`);
  updateAlert('KVPressure', 'kv_fraction', 'warning', 0.08 + 0.63 * load > 0.6, 5, timeMs, round(usedBlocks / totalBlocks),
              0.6, `KV cache ${round((100 * usedBlocks) / totalBlocks, 0)} % used`);

  const perReplica = replicas.map((r) => {
    const share = r.state === 'up' ? 1 / Math.max(1, upCount) : 0;
    return {
      model: r.model, id: r.id, state: r.state, healthy: r.healthy, backend: r.backend,
      running: Math.round(running * share), waiting: Math.round(waiting * share),
      kv_used: Math.round(usedBlocks * share), kv_total: Math.round(totalBlocks / replicas.length),
      restarts: r.restarts, last_error: r.last_error,
    };
  });
  const gpus = [];
  for (let i = 0; i < GPU_COUNT; i++) {
    const busy = replicas[i % replicas.length].state === 'up' ? load : 0.02;
    gpus.push({
      index: i, name: 'NVIDIA H100 80GB HBM3',
      utilization: round(Math.min(1, busy * (0.9 + jitter(0.1)) + 0.03)),
      memory_used_bytes: Math.round((52 + 18 * busy + i * 3) * 2 ** 30),
      memory_total_bytes: 80 * 2 ** 30,
      temperature_c: Math.round(38 + 30 * busy + i * 2),
      power_w: round(90 + 520 * busy + jitter(10), 1),
      ecc_corrected: i === 1 ? 3 : 0, ecc_uncorrected: 0,
    });
  }
  return {
    time_ms: timeMs,
    uptime_s: round((timeMs - startMs) / 1000, 1),
    interval_s: INTERVAL_MS / 1000,
    window_s: 10,
    server: { version: '0.9.0-mock', draining: false },
    models: [{ name: 'tiny', state: 'ready' }, { name: 'coder', state: 'ready' }],
    replicas: perReplica,
    cluster: {
      enabled: CLUSTER,
      nodes: CLUSTER ? [
        { id: 1, host: 'gpu-a', ranks: 2, gpus: ['NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3'], slots_used: 2 },
        { id: 2, host: 'gpu-b', ranks: 2, gpus: ['NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3'], slots_used: 1 },
      ] : [],
      joins: CLUSTER ? 2 : 0,
      losses: 0,
    },
    requests: {
      active: running, queued: waiting, per_s: perS, errors_per_s: errorsPerS,
      total: totals.requests, errors_total: totals.errors,
    },
    tokens: {
      completion_per_s: idle ? 0 : round(180 + 900 * load + jitter(40), 1),
      prompt_per_s: idle ? 0 : round(500 + 2200 * load + jitter(120), 1),
    },
    latency: { ttft, tpot: lat(0.011 + 0.006 * load, 1.2), e2e: lat(1.1 + 1.5 * load, 1.1) },
    queue: { running, waiting },
    kv: { used_blocks: usedBlocks, total_blocks: totalBlocks, fraction: round(usedBlocks / totalBlocks, 4) },
    gpus,
    process: { resident_bytes: Math.round((3.2 + 0.1 * load) * 2 ** 30) },
    tools: {
      calls_per_s: toolCalls, failures_per_s: toolFailures,
      calls_total: totals.tools, failures_total: totals.toolFailures,
    },
    events: eventLog.slice(),
    alerts: [...alertState.values()].map(({ pendingUntil, ...a }) => a),
  };
}

function step() {
  const f = makeFrame();
  tick++;
  frames.push(f);
  while (frames.length > HISTORY_FRAMES) frames.shift();
  return f;
}

// The last HISTORY_FRAMES ticks before the start, so that a fresh page has history.
for (let i = 0; i < HISTORY_FRAMES; i++) step();

const clients = new Set();
setInterval(() => {
  const f = step();
  const data = `event: frame\ndata: ${JSON.stringify(f)}\n\n`;
  for (const res of clients) res.write(data);
}, INTERVAL_MS);
setInterval(() => {
  for (const res of clients) res.write(': keepalive\n\n');
}, 5000);

// --- HTTP --------------------------------------------------------------------------------

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(body);
}

function serveFile(res, name) {
  const file = path.join(DASH_DIR, name);
  if (name === 'README.md' || !file.startsWith(DASH_DIR + path.sep) || !fs.existsSync(file)) {
    return send(res, 404, 'text/plain', 'not found\n');
  }
  const ext = path.extname(file) || path.basename(file).slice(path.basename(file).lastIndexOf('.'));
  send(res, 200, TYPES[ext] || 'application/octet-stream', fs.readFileSync(file));
}

function feed(req, res) {
  if (API_KEY && req.headers.authorization !== `Bearer ${API_KEY}`) {
    return send(res, 401, 'application/json',
                JSON.stringify({ error: { message: 'invalid API key', type: 'invalid_request_error', code: 'invalid_api_key' } }));
  }
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
  const history = `event: history\ndata: ${JSON.stringify({ frames })}\n\n`;
  // Written in small pieces, so that the page's parser meets events split across chunks
  // (and a CRLF-separated keepalive).
  for (let i = 0; i < history.length; i += 8192) res.write(history.slice(i, i + 8192));
  res.write(':\r\n\r\n');
  clients.add(res);
  req.on('close', () => clients.delete(res));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  if (req.method === 'GET' && (p === '/dashboard' || p === '/dashboard/')) return serveFile(res, 'index.html');
  if (req.method === 'GET' && p.startsWith('/dashboard/assets/')) {
    const name = decodeURIComponent(p.slice('/dashboard/assets/'.length));
    if (name.includes('/') || name === 'index.html') return send(res, 404, 'text/plain', 'not found\n');
    return serveFile(res, name);
  }
  if (req.method === 'GET' && p === '/dashboard/feed') return feed(req, res);
  if (req.method === 'GET' && (p === '/health' || p === '/ready')) return send(res, 200, 'application/json', '{"status":"ok"}');
  if (req.method === 'POST' && p === '/admin/fault') {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      let f;
      try {
        f = JSON.parse(body);
      } catch {
        return send(res, 400, 'application/json', '{"error":{"message":"not JSON"}}');
      }
      const r = replicas.find((x) => x.model === 'tiny' && x.id === f.replica);
      if (!r) return send(res, 404, 'application/json', '{"error":{"message":"no such replica"}}');
      if (!crash(r, Date.now(), `injected fault: ${f.fault}`)) {
        return send(res, 409, 'application/json', `{"error":{"message":"replica ${f.replica} is not up"}}`);
      }
      send(res, 200, 'application/json', '{"status":"injected"}');
    });
    return;
  }
  if (req.method === 'POST' && p === '/v1/chat/completions') {
    // Something for a load generator to call: a short streamed answer.
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      for (const w of ['Hello', ' from', ' the', ' mock']) {
        res.write(`data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: w } }] })}\n\n`);
      }
      res.end('data: [DONE]\n\n');
    });
    return;
  }
  if (req.method === 'POST' && p === '/mock/drop') {
    const n = clients.size;
    for (const c of clients) c.end();
    clients.clear();
    return send(res, 200, 'application/json', JSON.stringify({ dropped: n }));
  }
  send(res, 404, 'text/plain', 'not found\n');
});

server.listen(PORT, '127.0.0.1', () => console.log(`listening on ${server.address().port}`));

function stop() {
  for (const c of clients) c.end();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
