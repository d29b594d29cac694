// Resumable streams across a killed server (docs/gateway.md, "Resumable streams"): an SSE
// stream and a WebSocket stream are read part way, the server is killed with SIGKILL
// mid-generation, a new server starts on the same SQLite state store, and each stream
// resumes from the chunk after the last its client saw and finishes token-identical to
// an uncut run.
// Usage: node resume_kill_test.mjs <conclave binary> <qwen3 tokenizer dir>
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { check, expect, expectEq, startServer, tally } from './checks.mjs';

const [binary, tokenizerDir] = process.argv.slice(2);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conclave-resume-'));
const modelDir = path.join(work, 'tiny-qwen');
const store = `sqlite:${path.join(work, 'state.db')}`;
const servers = [];

function finish() {
  for (const s of servers) if (s.exited === null) s.proc.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exit(tally.failed === 0 ? 0 : 1);
}
setTimeout(() => {
  console.log('FAIL the run took longer than 240 s');
  tally.failed++;
  finish();
}, 240_000).unref();

const gen = spawnSync(binary, ['gen-model', '--preset', 'tiny-qwen', '--out', modelDir], { encoding: 'utf8' });
if (gen.status !== 0) {
  console.log(`FAIL gen-model exited ${gen.status}: ${gen.stderr}`);
  tally.failed++;
  finish();
}
fs.copyFileSync(path.join(tokenizerDir, 'tokenizer.json'), path.join(modelDir, 'tokenizer.json'));

/// A server on the shared store, up and ready: its base URL.
async function serve() {
  const s = startServer(binary, ['--model', modelDir, '--name', 'tiny', '--state-store', store]);
  servers.push(s);
  const port = await Promise.race([s.portPromise, s.exitPromise.then(() => null), sleep(60_000).then(() => null)]);
  if (port === null) throw new Error(`the server did not start:\n${s.log}`);
  const root = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${root}/ready`)).status === 200) return { s, root, port };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`the server never became ready:\n${s.log}`);
}

// Long enough that the server is still generating when it is killed.
const body = (seed) => ({
  model: 'tiny', prompt: 'Once upon a time', max_tokens: 300, ignore_eos: true,
  temperature: 0.9, seed, stream: true,
});

/// Numbered chunks (`id: <request>:<n>` + `data: ...`) in SSE text.
function numbered(text) {
  const out = [];
  for (const m of text.matchAll(/id: ([^\n:]+):(\d+)\ndata: ([^\n]*)\n\n/g))
    out.push({ request: m[1], n: Number(m[2]), payload: m[3] });
  return out;
}
const textOf = (payload) => JSON.parse(payload).choices[0]?.text ?? '';

/// POSTs a streamed completion; reads until `stopAfter` chunks came (then returns with the
/// response still open) or to the end.
async function stream(root, init, stopAfter = Infinity) {
  const r = await fetch(`${root}/v1/completions`, init);
  expectEq(r.status, 200, 'status');
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (numbered(text).length >= stopAfter) break;
  }
  return { chunks: numbered(text), text, reader };
}

const post = (b, headers = {}) => ({
  method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(b),
});

let a;
try {
  a = await serve();
} catch (e) {
  console.log(`FAIL ${e.message}`);
  tally.failed++;
  finish();
}
const uncut = (await stream(a.root, post(body(31)))).chunks.map((c) => textOf(c.payload));
const uncutWs = (await stream(a.root, post(body(32)))).chunks.map((c) => textOf(c.payload));

// Cut streams: an SSE one and a WebSocket one, both still generating when the server dies.
const sse = await stream(a.root, post(body(31)), 10);
const wsSeen = [];
let wsRequest = '';
await new Promise((resolve, reject) => {
  const ws = new WebSocket(`ws://127.0.0.1:${a.port}/v1/ws`);
  ws.on('open', () => ws.send(JSON.stringify({ type: 'request', id: 'w', endpoint: 'completions', body: body(32) })));
  ws.on('message', (m) => {
    if (wsSeen.length === 8) return;  // what the client saw before the server died
    const f = JSON.parse(m.toString());
    if (f.type !== 'chunk') return reject(new Error(`frame ${m}`));
    wsRequest = f.data.id;
    wsSeen.push(textOf(JSON.stringify(f.data)));
    if (wsSeen.length === 8) resolve();
  });
  ws.on('error', reject);
});
await sleep(600);  // the journal is written in batches (every 0.25 s)
a.s.proc.kill('SIGKILL');
await a.s.exitPromise;

const b = await serve();

await check('an SSE stream cut by SIGKILL resumes on the restarted server, token-identical', async () => {
  // What the dead server had still sent: the stream was cut before its end.
  let rest = sse.text;
  try {
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await sse.reader.read();
      if (done) break;
      rest += decoder.decode(value, { stream: true });
    }
  } catch {
    // the connection was reset
  }
  expect(!rest.includes('data: [DONE]'), 'the stream had ended before the server was killed');
  const seen = sse.chunks.slice(0, 10);
  const request = seen[0].request;
  const resumed = await stream(b.root, post({}, { 'Last-Event-ID': `${request}:10` }));
  expect(resumed.text.includes('data: [DONE]'), 'the resumed stream ends with [DONE]');
  expectEq(resumed.chunks[0].n, 11, 'the first resumed chunk');
  const texts = [...seen.map((c) => textOf(c.payload)), ...resumed.chunks.map((c) => textOf(c.payload))];
  expectEq(texts.length, uncut.length, 'chunks');
  expect(texts.join('') === uncut.join(''), 'the text differs from the uncut run');
});

await check('a WebSocket stream cut by SIGKILL resumes with a resume frame, token-identical', async () => {
  const texts = [...wsSeen];
  await new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/v1/ws`);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'resume', id: wsRequest, after: 8 })));
    ws.on('message', (m) => {
      const f = JSON.parse(m.toString());
      if (f.type === 'done') {
        ws.close();
        return resolve();
      }
      if (f.type !== 'chunk') return reject(new Error(`frame ${m}`));
      if (f.n !== texts.length + 1) return reject(new Error(`chunk ${f.n} after ${texts.length}`));
      texts.push(textOf(JSON.stringify(f.data)));
    });
    ws.on('error', reject);
  });
  expectEq(texts.length, uncutWs.length, 'chunks');
  expect(texts.join('') === uncutWs.join(''), 'the text differs from the uncut run');
});

finish();
