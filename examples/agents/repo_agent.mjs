// A repository-analysis agent: answers a question about a source tree by listing folders,
// reading files and searching, with tools that run here, confined to the tree.
// Usage: node repo_agent.mjs [ROOT] [QUESTION] [--forced]
//   CONCLAVE_BASE_URL (default http://127.0.0.1:8080/v1, scripts/demo.sh), CONCLAVE_MODEL.
// The model picks its tools itself. --forced forces each round's tool instead (list, read,
// search, then the answer), so that even a random-weight model runs the whole loop.
import fs from 'node:fs';
import path from 'node:path';
import { connect, runAgent } from './agent_loop.mjs';

const args = process.argv.slice(2).filter((a) => a !== '--forced');
const forced = process.argv.includes('--forced');
const root = path.resolve(args[0] ?? '.');
const question = args[1] ?? 'Which folders hold the HTTP server, and what does it serve?';

/// `p` inside the tree, or an error: the model's paths never leave it.
function inside(p) {
  const full = path.resolve(root, String(p ?? '.'));
  if (full !== root && !full.startsWith(root + path.sep)) throw new Error(`${p} is outside the repository`);
  return full;
}

const skip = new Set(['.git', 'node_modules', 'build', 'build-asan']);
function* files(dir, depth = 0) {
  if (depth > 6) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (skip.has(e.name)) continue;
    const full = path.join(dir, e.name);
    if (e.isDirectory()) yield* files(full, depth + 1);
    else if (e.isFile()) yield full;
  }
}

const tools = {
  list_files: {
    description: 'List the entries of a folder of the repository (folders end with /)',
    parameters: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
    run: ({ path: p }) => {
      const entries = fs.readdirSync(inside(p), { withFileTypes: true })
        .filter((e) => !skip.has(e.name))
        .map((e) => e.name + (e.isDirectory() ? '/' : ''));
      return entries.slice(0, 200).join('\n') || '(empty)';
    },
  },
  read_file: {
    description: 'Read the start of a file of the repository (at most 4 KiB)',
    parameters: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
    run: ({ path: p }) => {
      const fd = fs.openSync(inside(p), 'r');
      try {
        const buf = Buffer.alloc(4096);
        return buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
      } finally {
        fs.closeSync(fd);
      }
    },
  },
  search: {
    description: 'Find a text in the repository: up to 30 matching lines as path:line: text',
    parameters: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    run: ({ text }) => {
      if (!text) throw new Error('empty search text');
      const hits = [];
      for (const f of files(root)) {
        if (fs.statSync(f).size > 1 << 20) continue;
        const lines = fs.readFileSync(f, 'utf8').split('\n');
        lines.forEach((l, i) => {
          if (hits.length < 30 && l.includes(text)) hits.push(`${path.relative(root, f)}:${i + 1}: ${l.trim().slice(0, 160)}`);
        });
        if (hits.length >= 30) break;
      }
      return hits.join('\n') || `no line contains ${JSON.stringify(text)}`;
    },
  },
};

const { client, model } = await connect();
console.log(`repo agent: ${model} on ${root}\nquestion: ${question}`);
const { answer, calls } = await runAgent({
  client, model, tools,
  system: 'You analyse a source repository with the tools given. Cite the paths you used.',
  task: question,
  plan: forced ? ['list_files', 'read_file', 'search', 'none'] : Array(8).fill('auto'),
});
console.log(`\n${calls.length} tool calls; answer:\n${answer}`);
