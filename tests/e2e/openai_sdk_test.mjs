// End-to-end test of `conclave serve` through the official OpenAI Node SDK (npm `openai`,
// pinned in package-lock.json): it makes the tiny-qwen random model, starts the server on a
// free port, drives every OpenAI route with the SDK (plain, streamed, aborted, errors, tools)
// and stops the server with SIGTERM, which must drain and exit 0.
// Usage: node openai_sdk_test.mjs CONCLAVE_BINARY QWEN3_TOKENIZER_DIR
// (install the SDK first: `npm ci` in tests/e2e, which scripts/setup.sh does).
// Prints one line per check and a closing `N passed, M failed`; exits 1 on any failure.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { check, expect, expectEq, loadOpenAI, startServer, tally } from './checks.mjs';

const [binary, tokenizerDir] = process.argv.slice(2);
if (!binary || !tokenizerDir) {
  console.error('usage: node openai_sdk_test.mjs CONCLAVE_BINARY QWEN3_TOKENIZER_DIR');
  process.exit(2);
}

const OpenAI = await loadOpenAI();

const MODEL = 'tiny';
const REQUEST_TIMEOUT_MS = 60_000;

/// Expects `promise` to reject with an instance of `type`; returns the error.
async function expectReject(promise, type, what) {
  try {
    await promise;
  } catch (e) {
    if (!(e instanceof type)) throw new Error(`${what}: expected ${type.name}, got ${e && e.constructor.name}: ${e}`);
    return e;
  }
  throw new Error(`${what}: expected ${type.name}, but the request succeeded`);
}

// --- the server --------------------------------------------------------------------------

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'conclave-e2e-'));
const modelDir = path.join(work, 'tiny-qwen');
const gen = spawnSync(binary, ['gen-model', '--preset', 'tiny-qwen', '--out', modelDir], { encoding: 'utf8' });
if (gen.status !== 0) {
  console.log(`FAIL gen-model exited ${gen.status}: ${gen.stderr}${gen.error || ''}`);
  fs.rmSync(work, { recursive: true, force: true });
  console.log('0 passed, 1 failed');
  process.exit(1);
}
fs.copyFileSync(path.join(tokenizerDir, 'tokenizer.json'), path.join(modelDir, 'tokenizer.json'));

const main = startServer(binary, ['--model', modelDir, '--name', MODEL]);
const server = main.proc;
const exitPromise = main.exitPromise;
const portPromise = main.portPromise;
let extraServers = [];

function cleanup() {
  if (main.exited === null) server.kill('SIGKILL');
  for (const x of extraServers) if (x.exited === null) x.proc.kill('SIGKILL');
  fs.rmSync(work, { recursive: true, force: true });
}

/// Ends the run early (the server never came up, or the run hung) with the server's log.
function abortRun(why) {
  console.log(`FAIL ${why}\n--- server stderr ---\n${main.log}`);
  cleanup();
  console.log(`${tally.passed} passed, ${tally.failed + 1} failed`);
  process.exit(1);
}

// A whole run takes seconds; this only keeps a hung server from hanging ctest.
setTimeout(() => abortRun('the run took longer than 400 s'), 400_000).unref();

const port = await Promise.race([portPromise, exitPromise.then(() => null), sleep(60_000).then(() => null)]);
if (port === null) abortRun(`the server did not print its port (exit: ${JSON.stringify(main.exited)})`);
const root = `http://127.0.0.1:${port}`;

async function waitReady(srv = main, at = root) {
  for (let i = 0; i < 600; i++) {
    if (srv.exited !== null) return false;
    try {
      const r = await fetch(`${at}/ready`);
      if (r.status === 200) return true;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  return false;
}
if (!(await waitReady())) abortRun('GET /ready never answered 200');

/// The value of one Prometheus sample line, e.g. metric('conclave_kv_blocks{state="used"}').
async function metric(series) {
  const text = await (await fetch(`${root}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  throw new Error(`/metrics has no ${series}`);
}

/// Polls until `series` equals `want` (the engine publishes its gauges after each step).
async function waitMetric(series, want) {
  let v;
  for (let i = 0; i < 200; i++) {
    v = await metric(series);
    if (v === want) return;
    await sleep(100);
  }
  throw new Error(`${series} stayed ${v}, expected ${want}`);
}

const client = new OpenAI({ baseURL: `${root}/v1`, apiKey: 'any-key', maxRetries: 0, timeout: REQUEST_TIMEOUT_MS });

/// Reads a chat stream into {content, toolCalls, finishReason, usage, chunks}.
async function collectChat(stream) {
  const out = { content: '', toolCalls: [], finishReason: null, usage: null, chunks: 0, roles: [] };
  for await (const chunk of stream) {
    out.chunks++;
    expectEq(chunk.object, 'chat.completion.chunk', 'chunk object');
    if (chunk.usage) out.usage = chunk.usage;
    for (const choice of chunk.choices) {
      const d = choice.delta;
      if (d.role) out.roles.push(d.role);
      if (typeof d.content === 'string') out.content += d.content;
      for (const tc of d.tool_calls ?? []) {
        const acc = (out.toolCalls[tc.index] ??= { id: '', name: '', arguments: '' });
        if (tc.id) acc.id = tc.id;
        if (tc.function?.name) acc.name += tc.function.name;
        if (tc.function?.arguments) acc.arguments += tc.function.arguments;
      }
      if (choice.finish_reason) out.finishReason = choice.finish_reason;
    }
  }
  return out;
}

// --- the checks --------------------------------------------------------------------------

await check('models.list() returns the served model', async () => {
  const page = await client.models.list();
  expectEq(page.data.map((m) => m.id), [MODEL], 'model ids');
  expectEq(page.data[0].object, 'model', 'object');
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);  // the SDK's auto-pagination
  expectEq(ids, [MODEL], 'paginated model ids');
  const one = page.data[0];
  expect(typeof one.created === 'number' && typeof one.owned_by === 'string', 'created/owned_by are present');
});

const chatParams = {
  model: MODEL,
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Name three colours.' },
  ],
  seed: 1234,
  temperature: 0.8,
  max_tokens: 12,
};

let plain = null;
await check('chat.completions.create (not streamed) returns a message and usage', async () => {
  plain = await client.chat.completions.create(chatParams);
  expect(plain.id.startsWith('chatcmpl-'), `id ${plain.id}`);
  expectEq(plain.object, 'chat.completion', 'object');
  expectEq(plain.model, MODEL, 'model');
  expectEq(plain.choices.length, 1, 'choices');
  const c = plain.choices[0];
  expectEq(c.index, 0, 'index');
  expectEq(c.message.role, 'assistant', 'role');
  expect(typeof c.message.content === 'string' && c.message.content.length > 0, 'content is a non-empty string');
  const u = plain.usage;
  expect(u.prompt_tokens > 10, `prompt_tokens ${u.prompt_tokens} covers the templated two messages`);
  expect(u.completion_tokens >= 1 && u.completion_tokens <= 12, `completion_tokens ${u.completion_tokens}`);
  expectEq(u.total_tokens, u.prompt_tokens + u.completion_tokens, 'total_tokens');
  // 12 tokens means the length limit; fewer, that the model sampled end-of-text.
  expectEq(c.finish_reason, u.completion_tokens === 12 ? 'length' : 'stop', 'finish_reason');
  const again = await client.chat.completions.create(chatParams);
  expectEq(again.choices[0].message.content, c.message.content, 'the same seed gives the same text');
});

await check('the same chat request streamed: deltas concatenate to the same text and usage', async () => {
  expect(plain !== null, 'needs the non-streamed result');
  const stream = await client.chat.completions.create({
    ...chatParams,
    stream: true,
    stream_options: { include_usage: true },
  });
  const s = await collectChat(stream);
  expectEq(s.roles, ['assistant'], 'role is sent once, first');
  expectEq(s.content, plain.choices[0].message.content, 'streamed content');
  expectEq(s.finishReason, plain.choices[0].finish_reason, 'finish_reason');
  expectEq(s.usage, plain.usage, 'usage chunk');
  expectEq(s.toolCalls, [], 'tool calls');
});

await check('chat.completions.stream() helper assembles the same final completion', async () => {
  expect(plain !== null, 'needs the non-streamed result');
  const runner = client.chat.completions.stream({ ...chatParams, stream_options: { include_usage: true } });
  let deltas = '';
  runner.on('content', (delta) => {
    deltas += delta;
  });
  const final = await runner.finalChatCompletion();
  expectEq(final.choices[0].message.content, plain.choices[0].message.content, 'final content');
  expectEq(deltas, plain.choices[0].message.content, "'content' events");
  expectEq(final.choices[0].finish_reason, plain.choices[0].finish_reason, 'finish_reason');
  expectEq(final.usage, plain.usage, 'usage');
});

await check('logprobs: one entry per token with sorted top_logprobs; the stream() helper gathers the same list', async () => {
  const params = { ...chatParams, logprobs: true, top_logprobs: 2 };
  const r = await client.chat.completions.create(params);
  const content = r.choices[0].logprobs?.content;
  expect(Array.isArray(content), 'choices[0].logprobs.content is an array');
  expectEq(content.length, r.usage.completion_tokens, 'one entry per completion token');
  for (const e of content) {
    expect(typeof e.token === 'string' && Array.isArray(e.bytes), 'token and bytes');
    expect(e.logprob <= 0, `logprob ${e.logprob}`);
    expectEq(e.top_logprobs.length, 2, 'two alternatives');
    expect(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob, 'alternatives best first');
  }
  const final = await client.chat.completions.stream(params).finalChatCompletion();
  expectEq(final.choices[0].logprobs?.content, content, 'streamed logprobs');
});

await check('completions.create with a text prompt (plain and streamed agree)', async () => {
  const params = { model: MODEL, prompt: 'Hello, world', max_tokens: 8, temperature: 0, seed: 7 };
  const r = await client.completions.create(params);
  expect(r.id.startsWith('cmpl-'), `id ${r.id}`);
  expectEq(r.object, 'text_completion', 'object');
  expectEq(r.model, MODEL, 'model');
  expectEq(r.choices.length, 1, 'choices');
  expect(typeof r.choices[0].text === 'string', 'text is a string');
  expectEq(r.usage.prompt_tokens, 3, "prompt_tokens of 'Hello, world'");
  expect(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 8, `completion_tokens ${r.usage.completion_tokens}`);
  expectEq(r.choices[0].finish_reason, r.usage.completion_tokens === 8 ? 'length' : 'stop', 'finish_reason');
  const stream = await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    expectEq(chunk.object, 'text_completion', 'chunk object');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) text += c.text;
  }
  expectEq(text, r.choices[0].text, 'streamed text');
  expectEq(usage, r.usage, 'streamed usage');
});

await check('temperature 5 -> BadRequestError 400 naming the parameter', async () => {
  const e = await expectReject(client.chat.completions.create({ ...chatParams, temperature: 5 }),
                               OpenAI.BadRequestError, 'temperature 5');
  expectEq(e.status, 400, 'status');
  expectEq(e.param, 'temperature', 'param');
  expectEq(e.type, 'invalid_request_error', 'type');
  expectEq(e.error?.param, 'temperature', 'error.param');
  expect(e.message.includes('temperature'), `message: ${e.message}`);
  // Streamed requests are validated before the stream starts: the same typed error.
  const s = await expectReject(client.chat.completions.create({ ...chatParams, temperature: 5, stream: true }),
                               OpenAI.BadRequestError, 'streamed temperature 5');
  expectEq(s.param, 'temperature', 'streamed param');
});

await check('an unknown model -> NotFoundError 404', async () => {
  const e = await expectReject(client.chat.completions.create({ ...chatParams, model: 'no-such-model' }),
                               OpenAI.NotFoundError, 'unknown model');
  expectEq(e.status, 404, 'status');
  expectEq(e.param, 'model', 'param');
  expectEq(e.code, 'model_not_found', 'code');
  const c = await expectReject(client.completions.create({ model: 'no-such-model', prompt: 'x' }),
                               OpenAI.NotFoundError, 'unknown model (completions)');
  expectEq(c.status, 404, 'completions status');
});

// The server answers 413 as soon as it sees the length, then reads and drops the rest of
// the body (a lingering close) so the client, still sending, gets the error rather than
// a connection reset.
await check('a 10 MB prompt over the 4 MiB body limit -> APIError 413 with the server\'s message', async () => {
  const e = await expectReject(client.chat.completions.create({
    ...chatParams, messages: [{ role: 'user', content: 'x'.repeat(10 << 20) }],
  }), OpenAI.APIError, 'oversized body');
  expectEq(e.status, 413, `status (${e.message})`);
  expect(e.message.includes('larger than the server\'s limit'), `message: ${e.message}`);
  const ok = await client.chat.completions.create({ ...chatParams, max_tokens: 2 });
  expect(ok.choices.length === 1, 'the server still serves');
});

await check('a stream aborted after its first chunk is cancelled; the server keeps serving', async () => {
  const COMPLETION = 'conclave_tokens_total{kind="completion"}';
  const before = await metric(COMPLETION);
  const MAX = 3000;  // far more than can be generated before the abort reaches the server
  const ac = new AbortController();
  const stream = await client.chat.completions.create(
      { ...chatParams, max_tokens: MAX, ignore_eos: true, stream: true }, { signal: ac.signal });
  let chunks = 0;
  let finished = false;
  let abortError = null;
  try {
    for await (const chunk of stream) {
      if (++chunks === 1) ac.abort();
      finished ||= chunk.choices.some((c) => c.finish_reason);
    }
  } catch (e) {
    abortError = e;
  }
  // The SDK yields chunks that had arrived before the abort, then ends the iteration
  // quietly (older versions threw an abort error).
  expect(abortError === null || abortError instanceof OpenAI.APIUserAbortError || abortError.name === 'AbortError',
         `the iteration ends cleanly or with an abort error, got ${abortError}`);
  expect(chunks >= 1 && !finished, `the stream was cut short (${chunks} chunks, finished: ${finished})`);
  await waitMetric('conclave_sequences{state="running"}', 0);
  await waitMetric('conclave_kv_blocks{state="used"}', 0);
  // A request that ran to its end would have added MAX completion tokens.
  const after = await metric(COMPLETION);
  expect(after - before < MAX, `the aborted request generated ${after - before} tokens: it was not cancelled`);
  const next = await client.chat.completions.create(chatParams);
  expectEq(next.choices[0].message.content, plain?.choices[0].message.content, 'the next request is served as before');
  await waitMetric('conclave_kv_blocks{state="used"}', 0);
});

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather forecast for a city',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string', description: 'City name' },
          days: { type: 'integer', description: 'Forecast length in days' },
        },
        required: ['city'],
      },
    },
  },
];

for (const seed of [1, 2, 3]) {
  await check(`tools + tool_choice auto (seed ${seed}): streamed equals plain; any tool call has JSON arguments`, async () => {
    const params = {
      model: MODEL,
      messages: [{ role: 'user', content: 'What is the weather in Paris for the next 3 days?' }],
      tools,
      tool_choice: 'auto',
      seed,
      temperature: 0.8,
      max_tokens: 48,
    };
    const r = await client.chat.completions.create(params);
    const msg = r.choices[0].message;
    expectEq(msg.role, 'assistant', 'role');
    const calls = msg.tool_calls ?? [];
    for (const c of calls) {
      expectEq(c.type, 'function', 'tool call type');
      expect(typeof c.id === 'string' && c.id.length > 0, 'tool call id');
      expect(typeof JSON.parse(c.function.arguments) === 'object', 'arguments parse as a JSON object');
    }
    expectEq(r.choices[0].finish_reason,
             calls.length > 0 ? 'tool_calls' : (r.usage.completion_tokens === 48 ? 'length' : 'stop'), 'finish_reason');

    const s = await collectChat(await client.chat.completions.create(
        { ...params, stream: true, stream_options: { include_usage: true } }));
    expectEq(s.content, msg.content ?? '', 'streamed content');
    expectEq(s.toolCalls.map((c) => [c.name, JSON.parse(c.arguments)]),
             calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]), 'streamed tool calls');
    for (const c of s.toolCalls) expect(c.id.length > 0, 'streamed tool call id');
    expectEq(s.finishReason, r.choices[0].finish_reason, 'streamed finish_reason');
    expectEq(s.usage, r.usage, 'streamed usage');
  });
}

await check('a conversation holding an assistant tool call and its tool result is accepted', async () => {
  const history = [
    { role: 'user', content: 'What is the weather in Paris for the next 3 days?' },
    {
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","days":3}' } }],
    },
    { role: 'tool', tool_call_id: 'call_1', content: '{"forecast":["sun","rain","sun"]}' },
  ];
  const params = { model: MODEL, tools, seed: 5, temperature: 0.8, max_tokens: 4 };
  const short = await client.chat.completions.create({ ...params, messages: history.slice(0, 1) });
  const r = await client.chat.completions.create({ ...params, messages: history });
  expectEq(r.choices[0].message.role, 'assistant', 'role');
  expect(r.usage.prompt_tokens > short.usage.prompt_tokens + 10,
         `the call and its result are in the prompt (${r.usage.prompt_tokens} vs ${short.usage.prompt_tokens} tokens)`);
});

const typedTools = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather forecast for a city',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string' },
          days: { type: 'integer' },
          unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
          metric: { type: 'boolean' },
          lat: { type: 'number' },
        },
        required: ['city', 'days', 'unit'],
      },
    },
  },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } },
];

for (const seed of [1, 2]) {
  await check(`tool_choice naming a function, streamed (seed ${seed}): the random model's call is typed by the schema; the tool result follows`, async () => {
    const messages = [{ role: 'user', content: 'What is the weather in Paris for the next 3 days?' }];
    const params = { model: MODEL, tools: typedTools, seed, temperature: 1.0, max_tokens: 80 };
    const s = await collectChat(await client.chat.completions.create({
      ...params, messages, stream: true, tool_choice: { type: 'function', function: { name: 'get_weather' } },
    }));
    expectEq(s.finishReason, 'tool_calls', 'finish_reason');
    expectEq(s.content, '', 'no content besides the call');
    expectEq(s.toolCalls.length, 1, 'one call');
    const call = s.toolCalls[0];
    expectEq(call.name, 'get_weather', 'the named function');
    expect(/^call_[0-9a-f]{24}$/.test(call.id), `call id ${call.id}`);
    const args = JSON.parse(call.arguments);
    expect(typeof args.city === 'string', `city is a string: ${call.arguments}`);
    expect(Number.isInteger(args.days), `days is an integer: ${call.arguments}`);
    expect(['celsius', 'fahrenheit'].includes(args.unit), `unit is in the enum: ${call.arguments}`);
    if ('metric' in args) expect(typeof args.metric === 'boolean', `metric is a boolean: ${call.arguments}`);
    if ('lat' in args) expect(typeof args.lat === 'number', `lat is a number: ${call.arguments}`);
    for (const k of Object.keys(args)) expect(['city', 'days', 'unit', 'metric', 'lat'].includes(k), `declared key ${k}`);

    const follow = await client.chat.completions.create({
      ...params,
      max_tokens: 8,
      messages: [
        ...messages,
        { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }] },
        { role: 'tool', tool_call_id: call.id, content: '{"forecast":["sun","rain","sun"]}' },
      ],
    });
    expectEq(follow.choices[0].message.role, 'assistant', 'follow-up role');
    expect(follow.usage.completion_tokens >= 1, 'the follow-up generated');
  });
}

await check("tool_choice 'required' (not streamed): at least one call, every one typed by its schema", async () => {
  const r = await client.chat.completions.create({
    model: MODEL, tools: typedTools, seed: 9, temperature: 1.0, max_tokens: 80, tool_choice: 'required',
    messages: [{ role: 'user', content: 'What time is it?' }],
  });
  expectEq(r.choices[0].finish_reason, 'tool_calls', 'finish_reason');
  const calls = r.choices[0].message.tool_calls ?? [];
  expect(calls.length >= 1, 'at least one call');
  for (const c of calls) {
    expect(['get_weather', 'get_time'].includes(c.function.name), `tool name ${c.function.name}`);
    const args = JSON.parse(c.function.arguments);
    if (c.function.name === 'get_weather') expect(Number.isInteger(args.days), `days: ${c.function.arguments}`);
    if ('tz' in args) expect(typeof args.tz === 'string', `tz: ${c.function.arguments}`);
  }
});

await check('server-side rounds: math then code_interpreter run on the server; the SDK stream ignores them, raw chunks show both', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL, seed: 4, temperature: 1.0, max_tokens: 40, stream: true,
    messages: [{ role: 'user', content: 'Compute something' }],
    tool_choice: { type: 'function', function: { name: 'math' } },
    server_tools: ['math', 'code_interpreter'],
    server_tool_choices: ['code_interpreter', 'none'],
  });
  const seen = [];
  const s = { content: '', toolCalls: 0, finish: null };
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      if (typeof c.delta.content === 'string') s.content += c.delta.content;
      s.toolCalls += (c.delta.tool_calls ?? []).length;
      if (c.finish_reason) s.finish = c.finish_reason;
    }
    const ext = chunk.conclave;
    if (ext?.tool_call) seen.push(`call:${ext.tool_call.name}`);
    if (ext?.tool_result) seen.push(`result:${ext.tool_result.name}:${typeof ext.tool_result.content}`);
  }
  expectEq(seen, ['call:math', 'result:math:string', 'call:code_interpreter', 'result:code_interpreter:string'], 'server-side calls and results, in order');
  expectEq(s.toolCalls, 0, 'no tool_calls deltas for a plain client');
  expect(['stop', 'length'].includes(s.finish), `finish_reason ${s.finish}`);
});

await check('tool_choice naming a function that is not in tools -> BadRequestError', async () => {
  const e = await expectReject(client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'hi' }],
    tools,
    tool_choice: { type: 'function', function: { name: 'get_time' } },
  }), OpenAI.BadRequestError, 'unknown tool_choice function');
  expectEq(e.param, 'tool_choice.function.name', 'param');
});

// --- structured outputs ---------------------------------------------------------------------

/// The subset of JSON Schema structured outputs enforce: true when `v` fits `schema`.
function fits(v, schema) {
  if (schema.enum) return schema.enum.some((x) => JSON.stringify(x) === JSON.stringify(v));
  if (schema.anyOf) return schema.anyOf.some((b) => fits(v, b));
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  return types.some((t) => {
    switch (t) {
      case 'string': return typeof v === 'string';
      case 'integer': return Number.isInteger(v);
      case 'number': return typeof v === 'number';
      case 'boolean': return typeof v === 'boolean';
      case 'null': return v === null;
      case 'array': return Array.isArray(v) && v.every((x) => fits(x, schema.items ?? {}));
      case 'object': {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
        const props = schema.properties ?? {};
        if ((schema.required ?? []).some((k) => !(k in v))) return false;
        if (schema.additionalProperties === false && Object.keys(v).some((k) => !(k in props))) return false;
        return Object.entries(v).every(([k, x]) => !(k in props) || fits(x, props[k]));
      }
      default: return true;
    }
  });
}

const orderSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    customer: {
      type: 'object',
      properties: { name: { type: 'string' }, vip: { type: 'boolean' }, tier: { type: 'string', enum: ['gold', 'silver'] } },
      required: ['name', 'tier'],
      additionalProperties: false,
    },
    items: {
      type: 'array',
      items: { type: 'object', properties: { sku: { type: 'string' }, qty: { type: 'integer' }, price: { type: 'number' } }, required: ['sku', 'qty'] },
    },
    status: { type: 'string', enum: ['open', 'paid', 'shipped'] },
    note: { type: ['string', 'null'] },
  },
  required: ['id', 'customer', 'items', 'status'],
  additionalProperties: false,
};

await check('response_format json_schema: 50 seeded answers (streamed and not) all fit the schema', async () => {
  for (let seed = 1; seed <= 50; seed++) {
    const params = {
      model: MODEL,
      messages: [{ role: 'user', content: `Order number ${seed}?` }],
      response_format: { type: 'json_schema', json_schema: { name: 'order', schema: orderSchema, strict: true } },
      // The grammar closes the JSON within max_tokens; a small budget keeps 50 requests
      // quick under ASan too.
      max_tokens: 64,
      temperature: 1.0,
      seed,
    };
    let text = '';
    if (seed % 5 === 0) {
      const stream = await client.chat.completions.create({ ...params, stream: true });
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    } else {
      const r = await client.chat.completions.create(params);
      expectEq(r.choices[0].finish_reason, 'stop', `seed ${seed} finish_reason`);
      text = r.choices[0].message.content;
    }
    let v;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new Error(`seed ${seed}: not JSON: ${text}`);
    }
    expect(fits(v, orderSchema), `seed ${seed}: does not fit the schema: ${text}`);
  }
});

await check('response_format json_object: the answer parses as a JSON object', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'JSON please' }],
    response_format: { type: 'json_object' }, max_tokens: 96, seed: 9,
  });
  const v = JSON.parse(r.choices[0].message.content);
  expect(typeof v === 'object' && v !== null && !Array.isArray(v), 'an object');
});

await check('response_format with a keyword it cannot enforce -> BadRequestError naming it', async () => {
  const e = await expectReject(client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'hi' }],
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a' } } },
  }), OpenAI.BadRequestError, 'pattern');
  expectEq(e.param, 'response_format.json_schema.schema', 'param');
});

// --- a Qwen3-template model: JSON tool calls, thinking ----------------------------------------

// Qwen3's own template, with its generation prompt opening the think block unless
// enable_thinking is false (as Qwen3's thinking-only checkpoints do), so that even random
// weights produce reasoning.
const qwen3Dir = path.join(work, 'tiny-qwen3');
const gen3 = spawnSync(binary, ['gen-model', '--preset', 'tiny-qwen', '--out', qwen3Dir], { encoding: 'utf8' });
expectEq(gen3.status, 0, 'gen-model for the Qwen3-template model');
fs.copyFileSync(path.join(tokenizerDir, 'tokenizer.json'), path.join(qwen3Dir, 'tokenizer.json'));
fs.copyFileSync(path.join(tokenizerDir, 'tokenizer_config.json'), path.join(qwen3Dir, 'tokenizer_config.json'));
const qwen3Template = JSON.parse(fs.readFileSync(path.join(tokenizerDir, 'tokenizer_config.json'), 'utf8')).chat_template;
const closed = "{{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}";
expect(qwen3Template.includes(closed), "Qwen3's template has its enable_thinking switch");
const thinkingTemplate = path.join(work, 'qwen3-thinking.jinja');
fs.writeFileSync(thinkingTemplate, qwen3Template.replace(closed, "{{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- else %}\n        {{- '<think>\\n' }}\n    {%- endif %}"));
const q3 = startServer(binary, ['--model', qwen3Dir, '--name', 'qwen3', '--chat-template', thinkingTemplate]);
extraServers.push(q3);
const q3Port = await Promise.race([q3.portPromise, q3.exitPromise.then(() => null), sleep(60_000).then(() => null)]);
if (q3Port === null) abortRun(`the Qwen3-template server did not start: ${q3.log}`);
const q3Root = `http://127.0.0.1:${q3Port}`;
if (!(await waitReady(q3, q3Root))) abortRun('the Qwen3-template server never became ready');
const q3Client = new OpenAI({ baseURL: `${q3Root}/v1`, apiKey: 'x', maxRetries: 0, timeout: REQUEST_TIMEOUT_MS });

await check('Qwen3 template: reasoning_content streams as its own deltas, before any content', async () => {
  const stream = await q3Client.chat.completions.create({
    model: 'qwen3', messages: [{ role: 'user', content: 'Think about it.' }], max_tokens: 24, seed: 3, stream: true,
  });
  let reasoning = '';
  let contentAfter = '';
  for await (const chunk of stream) {
    const d = chunk.choices[0]?.delta ?? {};
    if (d.reasoning_content) {
      expectEq(contentAfter, '', 'reasoning after content');
      reasoning += d.reasoning_content;
    }
    if (d.content) contentAfter += d.content;
  }
  expect(reasoning.length > 0, 'some reasoning_content was streamed');
  const whole = await q3Client.chat.completions.create({
    model: 'qwen3', messages: [{ role: 'user', content: 'Think about it.' }], max_tokens: 24, seed: 3,
  });
  expectEq(whole.choices[0].message.reasoning_content, reasoning, 'non-streamed reasoning_content');
});

await check('Qwen3 template: enable_thinking false is honoured (no reasoning, a closed think block in the prompt)', async () => {
  const ask = (kwargs) => q3Client.chat.completions.create({
    model: 'qwen3', messages: [{ role: 'user', content: 'Answer directly.' }], max_tokens: 16, seed: 4,
    ...(kwargs ? { chat_template_kwargs: kwargs } : {}),
  });
  const off = await ask({ enable_thinking: false });
  const on = await ask(null);
  expect(off.choices[0].message.reasoning_content === undefined, 'no reasoning_content with thinking off');
  // '<think>\n\n</think>\n\n' (off) against '<think>\n' (on): more prompt tokens when off.
  expect(off.usage.prompt_tokens > on.usage.prompt_tokens, `prompt tokens ${off.usage.prompt_tokens} vs ${on.usage.prompt_tokens}`);
});

await check('Qwen3 template: a JSON tool call is parsed (streamed and not)', async () => {
  const params = {
    model: 'qwen3', messages: [{ role: 'user', content: 'Weather in Oslo?' }], tools,
    tool_choice: { type: 'function', function: { name: tools[0].function.name } },
    chat_template_kwargs: { enable_thinking: false }, max_tokens: 120, seed: 5,
  };
  const r = await q3Client.chat.completions.create(params);
  expectEq(r.choices[0].finish_reason, 'tool_calls', 'finish_reason');
  const call = r.choices[0].message.tool_calls[0];
  expectEq(call.function.name, tools[0].function.name, 'tool name');
  const args = JSON.parse(call.function.arguments);
  expect(fits(args, tools[0].function.parameters), `arguments fit the schema: ${call.function.arguments}`);
  let streamed = '';
  const stream = await q3Client.chat.completions.create({ ...params, stream: true });
  for await (const chunk of stream) {
    for (const tc of chunk.choices[0]?.delta?.tool_calls ?? []) streamed += tc.function?.arguments ?? '';
  }
  expectEq(JSON.parse(streamed), args, 'streamed arguments');
});

await check('SIGTERM drains: a running stream completes, new work is refused, the server exits 0', async () => {
  const MAX = 400;
  const stream = await client.chat.completions.create(
      { ...chatParams, max_tokens: MAX, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  expect(!first.done, 'the stream has a first chunk');
  server.kill('SIGTERM');
  // Draining: /ready turns 503 (or, once the drain is over, nothing listens any more).
  let ready = null;
  for (let i = 0; i < 500 && ready === null; i++) {
    try {
      const r = await fetch(`${root}/ready`);
      if (r.status !== 200) ready = { status: r.status, body: await r.json() };
    } catch {
      ready = 'closed';
    }
    if (ready === null) await sleep(10);
  }
  expect(ready !== null, '/ready still answered 200 after SIGTERM');
  if (ready !== 'closed') expectEq(ready, { status: 503, body: { status: 'draining' } }, '/ready while draining');
  // New requests are refused with 503 while draining (a connection error once stopped).
  try {
    await client.chat.completions.create(chatParams);
    throw new Error('a new request was accepted while draining');
  } catch (e) {
    if (e instanceof OpenAI.InternalServerError) {
      expectEq([e.status, e.type], [503, 'service_unavailable'], 'refusal while draining');
    } else if (!(e instanceof OpenAI.APIConnectionError)) {
      throw e;
    }
  }
  // The running stream is not cut: it runs to its max_tokens.
  let usage = null;
  let finish = null;
  for (let r = await it.next(); !r.done; r = await it.next()) {
    if (r.value.usage) usage = r.value.usage;
    for (const c of r.value.choices) finish = c.finish_reason ?? finish;
  }
  expectEq(finish, 'length', 'finish_reason of the drained stream');
  expectEq(usage?.completion_tokens, MAX, 'completion_tokens of the drained stream');
  const res = await Promise.race([exitPromise, sleep(15_000).then(() => null)]);
  expect(res !== null, 'the server was still running 15 s after its last request ended');
  expectEq(res, { code: 0, signal: null }, 'exit');
});

// Every line the server logged during the run (every request above, its errors, the
// drain) is one JSON object with the documented keys (docs/observability.md).
await check('every server log line is JSON with timestamp, level and the request fields', async () => {
  const keys = ['timestamp', 'level', 'message', 'request_id', 'model', 'tenant', 'replica',
                'latency_ms', 'prompt_tokens', 'completion_tokens', 'status', 'error'];
  const lines = main.log.split('\n').filter((l) => l.trim() !== '');
  expect(lines.length > 10, `only ${lines.length} log lines`);
  let requests = 0;
  for (const line of lines) {
    let o;
    try {
      o = JSON.parse(line);
    } catch {
      throw new Error(`not JSON: ${line}`);
    }
    for (const k of keys) expect(k in o, `no "${k}" in ${line}`);
    expect(!Number.isNaN(Date.parse(o.timestamp)), `bad timestamp in ${line}`);
    if (o.message === 'request') {
      requests++;
      expect(typeof o.request_id === 'string' && typeof o.status === 'number' &&
             typeof o.latency_ms === 'number' && typeof o.prompt_tokens === 'number' &&
             typeof o.completion_tokens === 'number', `incomplete request line: ${line}`);
      if (o.status === 200) expect(o.model === MODEL && Number.isInteger(o.replica), `request line without model/replica: ${line}`);
      if (o.status >= 400) expect(typeof o.error === 'string' && o.error.length > 0, `failed request without error: ${line}`);
    }
  }
  expect(requests >= 10, `only ${requests} request lines`);
});

if (tally.failed > 0) console.log(`--- server stderr ---\n${main.log}`);
for (const x of extraServers) if (tally.failed > 0) console.log(`--- other server stderr ---\n${x.log}`);
cleanup();
console.log(`${tally.passed} passed, ${tally.failed} failed`);
process.exit(tally.failed > 0 ? 1 : 0);
