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
