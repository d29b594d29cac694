// Browser test of conclave's live dashboard (/dashboard, net/dashboard/): starts
// `conclave serve` on the tiny-qwen random model with fault injection and fast alert rules,
// opens the page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), puts load on the server (`conclave bench serve`), crashes replica 0's engine and checks what the
// page shows: the live connection, plots that fill and grow, the tokens/s tile, the
// replica going down and coming back, a firing alert, a phone-sized layout without
// horizontal overflow, plots that follow the window's size, and no console or page errors.
// With --mock it starts dashboard_mock_feed.mjs instead of conclave (no binary needed) and
// also checks reconnecting, the API-key form and the no-GPU layout.
// Usage: node dashboard_test.mjs CONCLAVE_BINARY QWEN3_TOKENIZER_DIR [--screenshots DIR] [--mock]
// (install playwright-core first: `npm ci` in tests/e2e, which scripts/setup.sh does;
// CHROMIUM=/path overrides the browser). Prints one line per check and a closing
// `N passed, M failed`; exits 1 on any failure, 77 (SKIP) without chromium or playwright-core.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { check, expect, expectEq, tally } from './checks.mjs';

const argv = process.argv.slice(2);
const MOCK = argv.includes('--mock');
let screenshotDir = null;
const positional = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--mock') continue;
  if (argv[i] === '--screenshots') screenshotDir = argv[++i];
  else positional.push(argv[i]);
}
const [binary, tokenizerDir] = positional;
if ((!MOCK && (!binary || !tokenizerDir)) || (screenshotDir === undefined)) {
  console.error('usage: node dashboard_test.mjs CONCLAVE_BINARY QWEN3_TOKENIZER_DIR [--screenshots DIR] [--mock]');
  process.exit(2);
}

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) {
  console.log(`SKIP: no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  process.exit(77);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.log(`SKIP: cannot load playwright-core (${e.message}); run \`npm ci\` in ${import.meta.dirname}`);
  process.exit(77);
}

const MODEL = 'tiny';
const CHARTS = ['tokens', 'ttft', 'tpot', 'queue', 'kv', 'gpu_util', 'gpu_mem', 'gpu_power', 'tools'];
const GPU_CHARTS = ['gpu_util', 'gpu_mem', 'gpu_power'];
const MAX_POINTS = 300;

// ===== the server under test: adjust conclave's options here ==============================

/// conclave's configuration for this test: fault injection (POST /admin/fault), a fast
/// sampler and two alert rules that fire at once (any TTFT at all; a replica not up).
const CONFIG_TOML = `
[replicas]
fault_injection = true
restart_backoff_s = 1.0      # long enough "restarting" for a 0.5 s sample to see it

[observability]
sample_interval_s = 0.5

[[alerts]]
name = "FastTTFT"
rule = "ttft_p99"
threshold = 0.000001
for_s = 0
severity = "warning"

[[alerts]]
name = "ReplicaDown"
rule = "replica_down"
threshold = 0
for_s = 0
severity = "critical"
`;

/// The command line of `conclave serve` (port 0: it prints the port it took, SERVING_LINE).
const serverArgs = (config, modelDir) =>
  ['serve', '--config', config, '--model', modelDir, '--name', MODEL, '--port', '0'];
// (The log is JSON lines, so the name's quotes come escaped.)
const SERVING_LINE = /serving \\?"[^"\\]*\\?" on http:\/\/127\.0\.0\.1:(\d+)/;

/// Concurrent streams of `conclave bench serve`, the load.
const LOAD_CLIENTS = 4;

// =========================================================================================

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conclave-dashboard-'));
const procs = [];   // every process started: {proc, log, exited, exitPromise, name}
let browser = null;

function startProcess(name, cmd, args, portRe) {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const s = { name, proc, log: '', exited: null };
  procs.push(s);
  s.exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      s.exited = { code, signal };
      resolve(s.exited);
    });
  });
  s.portPromise = new Promise((resolve) => {
    const onData = (d) => {
      s.log += d;
      const m = s.log.match(portRe);
      if (m) resolve(Number(m[1]));
    };
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
  });
  return s;
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  browser = null;
  for (const s of procs) if (s.exited === null) s.proc.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
}

/// Ends the run early (the server never came up, or the run hung) with the servers' logs.
async function abortRun(why) {
  console.log(`FAIL ${why}`);
  for (const s of procs) console.log(`--- ${s.name} output ---\n${s.log}`);
  await cleanup();
  console.log(`${tally.passed} passed, ${tally.failed + 1} failed`);
  process.exit(1);
}

// The whole run takes about a minute; this keeps a hung server or browser from hanging ctest.
setTimeout(() => abortRun('the run took longer than 240 s'), 240_000).unref();

async function waitReady(s, root) {
  for (let i = 0; i < 600; i++) {
    if (s.exited !== null) return false;
    try {
      const r = await fetch(`${root}/ready`);
      if (r.status === 200) return true;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return false;
}

/// Starts the server (conclave, or the mock feed); its root URL.
async function startServer(name, extraMockArgs = []) {
  let s;
  if (MOCK) {
    s = startProcess(name, process.execPath,
                     [path.join(import.meta.dirname, 'dashboard_mock_feed.mjs'), '--port', '0', '--interval-ms', '250', ...extraMockArgs],
                     /listening on (\d+)/);
  } else {
    const modelDir = path.join(work, 'tiny-qwen');
    const gen = spawnSync(binary, ['gen-model', '--preset', 'tiny-qwen', '--out', modelDir], { encoding: 'utf8' });
    if (gen.status !== 0) await abortRun(`gen-model exited ${gen.status}: ${gen.stderr}${gen.error || ''}`);
    fs.copyFileSync(path.join(tokenizerDir, 'tokenizer.json'), path.join(modelDir, 'tokenizer.json'));
    const config = path.join(work, 'dashboard.toml');
    fs.writeFileSync(config, CONFIG_TOML);
    s = startProcess(name, binary, serverArgs(config, modelDir), SERVING_LINE);
  }
  const port = await Promise.race([s.portPromise, s.exitPromise.then(() => null), sleep(60_000).then(() => null)]);
  if (port === null) await abortRun(`${name} did not print its port (exit: ${JSON.stringify(s.exited)})`);
  const root = `http://127.0.0.1:${port}`;
  if (!(await waitReady(s, root))) await abortRun(`${name}: GET /ready never answered 200`);
  return { s, root };
}

const main = await startServer(MOCK ? 'mock feed' : 'conclave serve');
const root = main.root;

browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });

// --- pages and what they log ---------------------------------------------------------------

const browserErrors = [];  // console errors, page errors, failed asset loads

/// A page in a fresh context (its own local storage); `expect401` tolerates the feed's 401
/// answers (the API-key form's checks), which Chromium logs as console errors.
async function newPage(label, contextOptions, { expect401 = false } = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  const tolerated = (text) => expect401 && /status of 401/.test(text);
  page.on('console', (m) => {
    if (m.type() === 'error' && !tolerated(m.text())) browserErrors.push(`${label}: console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => browserErrors.push(`${label}: page error: ${e.stack || e}`));
  page.on('response', (r) => {
    if (r.status() >= 400 && !(expect401 && r.status() === 401)) browserErrors.push(`${label}: ${r.status()} for ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    // A feed stream cut off by closing the page or by the mock's drop is not an error.
    if (!r.url().endsWith('/dashboard/feed')) browserErrors.push(`${label}: request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return page;
}

const state = (page) => page.evaluate(() => {
  const d = window.conclaveDashboard;
  return {
    conn: document.getElementById('conn')?.dataset.state,
    framesReceived: d?.framesReceived ?? 0,
    points: Object.fromEntries((d?.charts ?? []).map((n) => [n, d.points(n)])),
    attrs: Object.fromEntries([...document.querySelectorAll('[data-chart]')].map((e) => [e.dataset.chart, e.dataset.points])),
    tokensText: document.getElementById('tokens-per-s')?.textContent ?? '',
    gpus: d?.lastFrame?.gpus?.length ?? 0,
  };
});

const waitFor = (page, fn, arg, timeout, polling = 100) => page.waitForFunction(fn, arg, { timeout, polling });
const waitLive = (page, timeout = 20_000) =>
  waitFor(page, () => document.getElementById('conn')?.dataset.state === 'live', null, timeout);

/// The width of the chart's uPlot canvas area and of its container.
const chartWidths = (page, name) => page.evaluate((n) => {
  const el = document.querySelector(`[data-chart="${n}"]`);
  const u = el?.querySelector('.uplot');
  return { container: el ? Math.floor(el.clientWidth) : -1, plot: u ? Math.round(u.getBoundingClientRect().width) : -1 };
}, name);

// --- load ----------------------------------------------------------------------------------

/// Runs `conclave bench serve` against the server (LOAD_CLIENTS streams, for up to two
/// minutes) until stopped (mock: no-op: the mock's load is synthetic). The requests a
/// crashed replica fails are counted by the bench, not fatal.
function startLoad() {
  const st = { proc: null, log: '', exited: null };
  if (MOCK) return st;
  st.proc = spawn(binary, ['bench', 'serve', '--url', root, '--model', MODEL,
                           '--clients', String(LOAD_CLIENTS), '--duration', '120',
                           '--max-tokens', '32'], { stdio: ['ignore', 'pipe', 'pipe'] });
  st.proc.stdout.setEncoding('utf8');
  st.proc.stderr.setEncoding('utf8');
  st.proc.stdout.on('data', (d) => (st.log += d));
  st.proc.stderr.on('data', (d) => (st.log += d));
  st.exitPromise = new Promise((resolve) => st.proc.on('exit', (code, signal) => resolve((st.exited = { code, signal }))));
  return st;
}

async function stopLoad(st) {
  if (!st.proc) return;
  if (st.exited === null) st.proc.kill('SIGTERM');
  await st.exitPromise;
}

// --- the checks ----------------------------------------------------------------------------

const desktop = await newPage('desktop', { viewport: { width: 1440, height: 900 } });

await check('GET /dashboard loads the page and its assets', async () => {
  const res = await desktop.goto(`${root}/dashboard`, { waitUntil: 'load', timeout: 20_000 });
  expectEq(res.status(), 200, 'status of /dashboard');
  expect((res.headers()['content-type'] || '').startsWith('text/html'), `content-type ${res.headers()['content-type']}`);
  expect((await desktop.title()).includes('conclave'), 'the title names conclave');
  expect(await desktop.evaluate(() => typeof window.uPlot === 'function'), 'uPlot is loaded');
  expect(await desktop.evaluate(() => typeof window.conclaveDashboard === 'object'), 'window.conclaveDashboard is set');
});

await check('#conn turns live', async () => {
  await waitLive(desktop);
});

await check('the SSE parser splits events, joins multi-line data and skips comments (CRLF too)', async () => {
  const got = await desktop.evaluate(() =>
    window.conclaveDashboard.parseSse('event: history\ndata: {"a":\ndata: 1}\n\n: keepalive\n\ndata:x\r\n\r\nevent: frame\r\ndata: y\r\n\r\n'));
  expectEq(got, [{ type: 'history', data: '{"a":\n1}' }, { type: 'message', data: 'x' }, { type: 'frame', data: 'y' }], 'events');
});

await check('every plot receives points; data-points follows points(name)', async () => {
  await waitFor(desktop, () => window.conclaveDashboard.points('tokens') > 0 && window.conclaveDashboard.lastFrame !== null, null, 20_000);
  await sleep(300);
  const st = await state(desktop);
  expectEq(Object.keys(st.points).sort(), [...CHARTS].sort(), 'chart names');
  for (const name of CHARTS) {
    if (GPU_CHARTS.includes(name) && st.gpus === 0) {
      expectEq(st.points[name], 0, `${name} without GPUs`);
    } else {
      expect(st.points[name] > 0, `${name} has no points`);
    }
    // Both are read in one evaluate: they agree unless a frame landed in between.
    expect(Math.abs(Number(st.attrs[name]) - st.points[name]) <= 1, `data-points ${st.attrs[name]} vs points() ${st.points[name]} for ${name}`);
  }
  expect(st.points.tokens <= MAX_POINTS, `at most ${MAX_POINTS} points`);
});

await check('GPU plots show, or give way to the NVML note when the frame has no GPUs', async () => {
  const r = await desktop.evaluate(() => ({
    gpus: window.conclaveDashboard.lastFrame.gpus?.length ?? 0,
    note: !document.getElementById('gpu-note').hidden,
    charts: [...document.querySelectorAll('.gpu-chart')].map((e) => e.checkVisibility()),
    noteText: document.getElementById('gpu-note').textContent,
  }));
  if (r.gpus === 0) {
    expect(r.note && r.noteText.includes('NVML not available'), 'the NVML note shows');
    expectEq(r.charts, [false, false, false], 'GPU plots hidden');
  } else {
    expect(!r.note, 'no NVML note with GPUs');
    expectEq(r.charts, [true, true, true], 'GPU plots visible');
  }
});

const load = startLoad();

await check('under load the tokens plot grows and #tokens-per-s shows a value > 0', async () => {
  const before = await state(desktop);
  await waitFor(desktop, ([f0, n0, max]) => {
    const d = window.conclaveDashboard;
    return d.framesReceived >= f0 + 3 && (d.points('tokens') > n0 || d.points('tokens') === max);
  }, [before.framesReceived, before.points.tokens, MAX_POINTS], 30_000);
  await waitFor(desktop, () => parseFloat(document.getElementById('tokens-per-s').textContent) > 0, null, 60_000, 200);
  if (!MOCK) expect(load.exited === null, `conclave bench serve ended early: ${JSON.stringify(load.exited)}\n${load.log}`);
});

// Replica 0 of the model crashes (fault injection); the page must show it leave "up" and
// come back. The poll also notes every firing alert it sees.
const seen = { states: [], firing: new Set() };
async function pollReplica(until, timeoutMs) {
  const t0 = Date.now();
  for (;;) {
    const r = await desktop.evaluate((sel) => ({
      state: document.querySelector(sel)?.dataset.state ?? null,
      firing: [...document.querySelectorAll('[data-alert][data-state="firing"]')].map((e) => e.dataset.alert),
    }), `tr[data-replica="${MODEL}/0"]`);
    if (seen.states[seen.states.length - 1] !== r.state) seen.states.push(r.state);
    for (const a of r.firing) seen.firing.add(a);
    if (until(r.state)) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`replica ${MODEL}/0 states seen: ${JSON.stringify(seen.states)}`);
    await sleep(100);
  }
}

await check(`POST /admin/fault crash_engine: row ${MODEL}/0 leaves "up", then shows "up" again`, async () => {
  await pollReplica((s) => s === 'up', 30_000);  // (the mock's own crash cycle may be under way)
  let res;
  for (let i = 0; i < 50; i++) {
    res = await fetch(`${root}/admin/fault`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ replica: 0, fault: 'crash_engine' }),
    });
    if (res.status !== 409) break;
    await sleep(200);
  }
  expectEq(res.status, 200, `POST /admin/fault (${await res.text()})`);
  await pollReplica((s) => s !== null && s !== 'up', 60_000);
  await pollReplica((s) => s === 'up', 60_000);
  expect(seen.states.some((s) => s && s !== 'up'), 'a state other than up was shown');
});

await check('an alert item with data-state="firing" appears', async () => {
  if (seen.firing.size === 0) {
    await waitFor(desktop, () => document.querySelector('[data-alert][data-state="firing"]') !== null, null, 30_000);
  }
  const a = await desktop.evaluate(() => {
    const el = document.querySelector('[data-alert][data-state="firing"]') ;
    return el ? { name: el.dataset.alert, visible: el.checkVisibility() } : null;
  });
  expect(seen.firing.size > 0 || (a && a.visible), 'no firing alert was shown');
});

await check('the events log lists the replica events, newest first', async () => {
  const ev = await desktop.evaluate(() => [...document.querySelectorAll('#events li')].map((li) => ({
    kind: li.dataset.eventKind, time: li.querySelector('time').getAttribute('datetime'),
  })));
  expect(ev.some((e) => e.kind === 'replica'), `no replica event among ${ev.length}`);
  const times = ev.map((e) => e.time).filter(Boolean);
  expectEq(times, [...times].sort().reverse(), 'newest first');
  const keys = await desktop.evaluate(() => [...document.querySelectorAll('#events li')].map((li) =>
    `${li.querySelector('time').getAttribute('datetime')} ${li.textContent}`));
  expectEq(keys.length, new Set(keys).size, 'no event is listed twice');
});

await stopLoad(load);

await check('plots follow the window size', async () => {
  const wide = await chartWidths(desktop, 'tokens');
  expect(wide.plot > 0 && Math.abs(wide.plot - wide.container) <= 2, `plot ${wide.plot} px in a ${wide.container} px container`);
  await desktop.setViewportSize({ width: 820, height: 900 });
  await waitFor(desktop, (w) => {
    const el = document.querySelector('[data-chart="tokens"]');
    const u = el.querySelector('.uplot');
    return u && Math.floor(el.clientWidth) !== w && Math.abs(u.getBoundingClientRect().width - el.clientWidth) <= 2;
  }, wide.container, 5_000);
  const narrow = await chartWidths(desktop, 'tokens');
  expect(narrow.plot < wide.plot, `plot ${narrow.plot} px at 820 px wide, ${wide.plot} px at 1440`);
  await desktop.setViewportSize({ width: 1440, height: 900 });
  await waitFor(desktop, (w) => Math.abs(document.querySelector('[data-chart="tokens"] .uplot').getBoundingClientRect().width - w) <= 2,
                wide.container, 5_000);
});

if (MOCK) {
  await check('a dropped feed: #conn turns reconnecting, then live again, and frames flow', async () => {
    const before = (await state(desktop)).framesReceived;
    const r = await (await fetch(`${root}/mock/drop`, { method: 'POST' })).json();
    expect(r.dropped >= 1, `dropped ${r.dropped} streams`);
    await waitFor(desktop, () => document.getElementById('conn').dataset.state === 'reconnecting', null, 5_000, 20);
    await waitLive(desktop, 10_000);
    await waitFor(desktop, (f0) => window.conclaveDashboard.framesReceived > f0 + 2, before, 10_000);
  });
}

await check('desktop screenshot (1440x900, full page)', async () => {
  if (!screenshotDir) return;
  fs.mkdirSync(screenshotDir, { recursive: true });
  await desktop.evaluate(() => window.scrollTo(0, 0));
  await desktop.screenshot({ path: path.join(screenshotDir, 'dashboard-desktop.png'), fullPage: true });
});

await check('phone (390x844) at /dashboard/: live, plotted, no horizontal overflow', async () => {
  const phone = await newPage('phone', { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const res = await phone.goto(`${root}/dashboard/`, { waitUntil: 'load', timeout: 20_000 });
  expectEq(res.status(), 200, 'status of /dashboard/');
  await waitLive(phone);
  await waitFor(phone, () => window.conclaveDashboard.points('tokens') > 0, null, 20_000);
  await sleep(500);
  const m = await phone.evaluate(() => ({
    scrollWidth: document.scrollingElement.scrollWidth,
    innerWidth: window.innerWidth,
    plots: [...document.querySelectorAll('.uplot')].map((u) => Math.round(u.getBoundingClientRect().right)),
    columns: getComputedStyle(document.getElementById('charts')).gridTemplateColumns.split(' ').length,
  }));
  expect(m.scrollWidth <= m.innerWidth + 1, `scrollWidth ${m.scrollWidth} > innerWidth ${m.innerWidth}`);
  expect(m.plots.length > 0 && m.plots.every((r) => r <= m.innerWidth + 1), `plots end at ${m.plots} (viewport ${m.innerWidth})`);
  expectEq(m.columns, 1, 'plot grid columns');
  if (screenshotDir) {
    fs.mkdirSync(screenshotDir, { recursive: true });
    await phone.screenshot({ path: path.join(screenshotDir, 'dashboard-phone.png'), fullPage: true });
  }
  await phone.context().close();
});

if (MOCK) {
  // A second mock with an API key, no GPUs and no cluster.
  const keyed = await startServer('mock feed (API key, no GPU)', ['--api-key', 'secret-key', '--gpus', '0', '--no-cluster']);
  await check('an API key: the form asks for it, a wrong one is refused, the right one is kept and goes live', async () => {
    const page = await newPage('auth', { viewport: { width: 1280, height: 800 } }, { expect401: true });
    await page.goto(`${keyed.root}/dashboard`, { waitUntil: 'load', timeout: 20_000 });
    await waitFor(page, () => document.getElementById('conn').dataset.state === 'unauthorized', null, 10_000);
    expect(await page.isVisible('#auth'), 'the key form shows');
    await page.fill('#api-key', 'wrong-key');
    await page.click('#auth button[type=submit]');
    await waitFor(page, () => document.getElementById('conn').dataset.state === 'unauthorized' &&
                              !document.getElementById('auth-error').hidden, null, 10_000);
    await page.fill('#api-key', 'secret-key');
    await page.click('#auth button[type=submit]');
    await waitLive(page);
    expect(!(await page.isVisible('#auth')), 'the key form is gone');
    expectEq(await page.evaluate(() => localStorage.getItem('conclave.apiKey')), 'secret-key', 'stored key');
    await page.reload({ waitUntil: 'load' });
    await waitLive(page);  // the stored key, with no form
    await waitFor(page, () => window.conclaveDashboard.points('tokens') > 0, null, 10_000);
    const r = await page.evaluate(() => ({
      note: document.getElementById('gpu-note').checkVisibility(),
      gpuPoints: ['gpu_util', 'gpu_mem', 'gpu_power'].map((n) => window.conclaveDashboard.points(n)),
      gpuPlots: [...document.querySelectorAll('.gpu-chart')].map((e) => e.checkVisibility()),
      cluster: document.getElementById('cluster-card').checkVisibility(),
    }));
    expect(r.note, 'the NVML note shows without GPUs');
    expectEq(r.gpuPoints, [0, 0, 0], 'GPU plot points');
    expectEq(r.gpuPlots, [false, false, false], 'GPU plots hidden');
    expect(!r.cluster, 'the cluster table is hidden when cluster.enabled is false');
    await page.context().close();
  });
}

await check('no console errors, page errors or failed loads in the browser', async () => {
  expect(browserErrors.length === 0, browserErrors.join('\n     '));
});

await browser.close();
browser = null;

await check('SIGTERM stops the server with exit 0', async () => {
  for (const s of procs) if (s.exited === null) s.proc.kill('SIGTERM');
  const res = await Promise.race([main.s.exitPromise, sleep(30_000).then(() => null)]);
  expect(res !== null, 'the server was still running 30 s after SIGTERM');
  expectEq(res, { code: 0, signal: null }, 'exit');
});

if (tally.failed > 0) for (const s of procs) console.log(`--- ${s.name} output ---\n${s.log}`);
await cleanup();
console.log(`${tally.passed} passed, ${tally.failed} failed`);
process.exit(tally.failed > 0 ? 1 : 0);
