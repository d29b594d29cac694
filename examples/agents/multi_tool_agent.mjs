// A multi-tool agent: tools the server runs itself (math, and the Python sandbox
// code_interpreter) next to one this program runs (unit conversion), in one conversation.
// Server-side calls happen inside a request (the reply's "conclave" field shows them);
// client-side calls come back as tool_calls for this program to answer.
// Usage: node multi_tool_agent.mjs [TASK] [--forced]
//   CONCLAVE_BASE_URL (default http://127.0.0.1:8080/v1, scripts/demo.sh), CONCLAVE_MODEL.
// The model picks its tools itself. --forced forces the rounds instead (math on the
// server, then convert here, then the answer), so that a random-weight model drives it too.
import { connect, runAgent } from './agent_loop.mjs';

const args = process.argv.slice(2).filter((a) => a !== '--forced');
const forced = process.argv.includes('--forced');
const task = args[0] ?? 'A tank is 2.5 m by 1.2 m by 0.8 m. How many US gallons does it hold?';

const perUnit = { m3: 1, l: 1e-3, us_gal: 3.785411784e-3, ft3: 0.028316846592 };
const tools = {
  convert_volume: {
    description: 'Convert a volume between units: m3, l, us_gal, ft3',
    parameters: {
      type: 'object',
      properties: {
        value: { type: 'number' },
        from: { type: 'string', enum: Object.keys(perUnit) },
        to: { type: 'string', enum: Object.keys(perUnit) },
      },
      required: ['value', 'from', 'to'],
    },
    run: ({ value, from, to }) => {
      if (!(from in perUnit) || !(to in perUnit)) throw new Error(`unknown unit ${from} or ${to}`);
      return `${value} ${from} = ${(value * perUnit[from]) / perUnit[to]} ${to}`;
    },
  },
};

const { client, model } = await connect();
console.log(`multi-tool agent: ${model}\ntask: ${task}`);
const { answer, calls } = await runAgent({
  client, model, tools,
  system: 'Compute with the math tool or code_interpreter, convert units with convert_volume.',
  task,
  // Round 1: the server runs `math` (forced), then the model continues in the same request
  // and must call convert_volume (a client tool); round 2 answers.
  plan: forced ? ['math', 'none'] : Array(6).fill('auto'),
  extra: {
    server_tools: ['math', 'code_interpreter'],
    ...(forced ? { server_tool_choices: ['convert_volume'] } : {}),
  },
});
console.log(`\n${calls.length} client tool calls; answer:\n${answer}`);
