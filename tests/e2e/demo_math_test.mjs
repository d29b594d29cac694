// End to end, issue #21: the demo model (what `conclave serve` serves with no --model, as
// scripts/demo.sh starts it) answers arithmetic through the server-side `math` tool,
// driven by the official OpenAI Node SDK with no forced tool choice: the model calls the
// tool, the server runs it, and the answer carries the tool's result.
// Usage: node demo_math_test.mjs CONCLAVE_BINARY
// (install the SDK first: `npm ci` in tests/e2e, which scripts/setup.sh does).
// Prints one line per check and a closing `N passed, M failed`; exits 1 on any failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { check, expect, expectEq, loadOpenAI, startServer, tally } from './checks.mjs';

const [binary] = process.argv.slice(2);
if (!binary) {
  console.error('usage: node demo_math_test.mjs CONCLAVE_BINARY');
  process.exit(2);
}
const OpenAI = await loadOpenAI();

// A fresh CONCLAVE_HOME: the server copies the demo model there, as on a first run.
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'conclave-demo-e2e-'));
process.env.CONCLAVE_HOME = home;
const srv = startServer(binary, ['--state-store', 'memory']);
function finish(code) {
  if (srv.exited === null) srv.proc.kill('SIGKILL');
  fs.rmSync(home, { recursive: true, force: true });
  console.log(`${tally.passed} passed, ${tally.failed} failed`);
  process.exit(code);
}
setTimeout(() => {
  console.log(`FAIL the run took longer than 240 s\n--- server stderr ---\n${srv.log}`);
  tally.failed++;
  finish(1);
}, 240_000).unref();

const port = await Promise.race([srv.portPromise, srv.exitPromise.then(() => null), sleep(120_000).then(() => null)]);
if (port === null) {
  console.log(`FAIL the server did not start\n--- server stderr ---\n${srv.log}`);
  tally.failed++;
  finish(1);
}
for (let i = 0; i < 600 && (await fetch(`http://127.0.0.1:${port}/ready`).catch(() => ({ status: 0 }))).status !== 200; i++)
  await sleep(100);

const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', timeout: 120_000 });
const models = await client.models.list();
const model = models.data[0].id;

// Questions in held-out phrasings (tools/demo_data.py's HELDOUT_Q): the training data
// never asked this way.
const questions = [
  ['Determine 37 * 41.', '1517'],
  ['Result of 9120 divided by 24?', '380'],
  ['Kindly tell me 4587 plus 982, thanks.', '5569'],
];

for (const [q, want] of questions) {
  await check(`"${q}": the model calls math, the server runs it, the answer says ${want}`, async () => {
    const r = await client.chat.completions.create({
      model, temperature: 0, max_tokens: 64,
      messages: [{ role: 'user', content: q }],
      server_tools: ['math'],
    });
    const calls = r.conclave?.tool_calls ?? [];
    expectEq(calls.map((c) => [c.name, c.outcome]), [['math', 'ok']], 'server-side calls');
    expectEq(calls[0].content, want, `math(${calls[0].arguments}) printed`);
    const msg = r.choices[0].message;
    expect(!msg.tool_calls?.length, `no client tool calls: ${JSON.stringify(msg.tool_calls)}`);
    expect((msg.content ?? '').includes(want), `the answer "${msg.content}" has ${want}`);
    expectEq(r.choices[0].finish_reason, 'stop', 'finish_reason');
  });
}

await check('streamed: the call and its result arrive as conclave chunks, the answer as content', async () => {
  const stream = await client.chat.completions.create({
    model, temperature: 0, max_tokens: 64, stream: true,
    messages: [{ role: 'user', content: questions[0][0] }],
    server_tools: ['math'],
  });
  const seen = [];
  let content = '';
  for await (const chunk of stream) {
    for (const c of chunk.choices) if (typeof c.delta.content === 'string') content += c.delta.content;
    if (chunk.conclave?.tool_call) seen.push(`call:${chunk.conclave.tool_call.name}`);
    if (chunk.conclave?.tool_result) seen.push(`result:${chunk.conclave.tool_result.content}`);
  }
  expectEq(seen, ['call:math', `result:${questions[0][1]}`], 'server-side chunks');
  expect(content.includes(questions[0][1]), `streamed answer "${content}"`);
});

await check('without tools the model answers in text and calls nothing', async () => {
  const r = await client.chat.completions.create({
    model, temperature: 0, max_tokens: 48, messages: [{ role: 'user', content: questions[0][0] }],
  });
  expect(!r.choices[0].message.tool_calls?.length, 'no tool_calls');
  expect(!(r.choices[0].message.content ?? '').includes('<tool_call>'), 'no tool-call markup');
});

srv.proc.kill('SIGTERM');
const exit = await Promise.race([srv.exitPromise, sleep(30_000).then(() => null)]);
await check('SIGTERM drains and exits 0', async () => expectEq(exit, { code: 0, signal: null }, 'exit'));
finish(tally.failed ? 1 : 0);
