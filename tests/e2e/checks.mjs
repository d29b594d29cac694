import { spawn } from 'node:child_process';

// The e2e tests' checks: each named check runs to the end whatever fails in it, so one
// report shows every broken behaviour; `tally` counts them for the closing line.
export const tally = { passed: 0, failed: 0 };

/// One named check: a failed assertion or a thrown error counts as one failure.
export async function check(name, fn) {
  try {
    await fn();
    tally.passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    tally.failed++;
    console.log(`FAIL ${name}\n     ${(e && e.stack) || e}`);
  }
}

export function expect(cond, what) {
  if (!cond) throw new Error(what);
}

export function expectEq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const b = JSON.stringify(expected);
  if (a !== b) throw new Error(`${what}: got ${a}, expected ${b}`);
}

/// The official OpenAI SDK (tests/e2e's npm packages); exits 2 saying how to install it.
export async function loadOpenAI() {
  try {
    return (await import('openai')).default;
  } catch (e) {
    console.error(`cannot load the 'openai' package (${e.message}); run \`npm ci\` in ${import.meta.dirname} ` +
                  '(scripts/setup.sh does it)');
    process.exit(2);
  }
}

/// Starts `conclave serve` (`binary`) with `args` on a free port; the port, the process, its stderr so far and a
/// promise of its exit.
export function startServer(binary, args) {
  const proc = spawn(binary, ['serve', ...args, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const s = { proc, log: '', exited: null };
  s.exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      s.exited = { code, signal };
      resolve(s.exited);
    });
  });
  s.portPromise = new Promise((resolve) => {
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      s.log += d;
      // The log is JSON lines: the message's quotes come escaped.
      const m = s.log.match(/serving \\?"[^"\\]*\\?" on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
  });
  return s;
}

