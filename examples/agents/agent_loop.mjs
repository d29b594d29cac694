// The loop both agents share: ask the model, run the tool calls it makes on this side,
// send the results back, until it answers without calling a tool. `plan` gives the
// tool_choice of each round ("auto" lets the model decide; a name forces that tool, so that
// a model too weak to choose, such as a random-weight test model, still drives the loop).
import OpenAI from 'openai';

/// The client for CONCLAVE_BASE_URL (default: scripts/demo.sh's address) and the model to
/// use (CONCLAVE_MODEL, else the first one the server lists).
export async function connect() {
  const baseURL = process.env.CONCLAVE_BASE_URL ?? 'http://127.0.0.1:8080/v1';
  const client = new OpenAI({ baseURL, apiKey: process.env.CONCLAVE_API_KEY ?? 'none' });
  const model = process.env.CONCLAVE_MODEL ?? (await client.models.list()).data[0].id;
  return { client, model };
}

const choiceOf = (c) => (c === 'auto' || c === 'none' || c === 'required' ? c : { type: 'function', function: { name: c } });

/// Runs the loop. `tools`: {name: {description, parameters, run(args) -> string}} run here.
/// `extra`: more request fields (server_tools...). Returns {answer, rounds, calls}.
export async function runAgent({ client, model, system, task, tools, plan, extra = {}, maxTokens = 96, log = console.log }) {
  const specs = Object.entries(tools).map(([name, t]) => ({
    type: 'function', function: { name, description: t.description, parameters: t.parameters },
  }));
  const messages = [{ role: 'system', content: system }, { role: 'user', content: task }];
  const calls = [];
  for (let round = 0; round < plan.length; round++) {
    const reply = await client.chat.completions.create({
      model, messages, tools: specs, tool_choice: choiceOf(plan[round]), max_tokens: maxTokens,
      temperature: 0, ...extra,
    });
    const msg = reply.choices[0].message;
    for (const sc of reply.conclave?.tool_calls ?? [])  // tools the server ran itself
      log(`  [server] ${sc.name}(${sc.arguments}) -> ${sc.outcome}: ${String(sc.content).slice(0, 120)}`);
    if (!msg.tool_calls?.length) {
      log(`round ${round + 1}: answer: ${(msg.content ?? '').slice(0, 200)}`);
      return { answer: msg.content ?? '', rounds: round + 1, calls };
    }
    // The calls the server ran in this request go into the history first, in the order
    // they ran, so the next request shows the model everything it saw (the API is
    // stateless: the server keeps no conversation).
    for (const sc of reply.conclave?.tool_calls ?? []) {
      messages.push({ role: 'assistant', content: '', tool_calls: [{ id: sc.id, type: 'function', function: { name: sc.name, arguments: sc.arguments } }] });
      messages.push({ role: 'tool', tool_call_id: sc.id, content: String(sc.content) });
    }
    messages.push({ role: 'assistant', content: msg.content ?? '', tool_calls: msg.tool_calls });
    for (const call of msg.tool_calls) {
      const tool = tools[call.function.name];
      let result;
      try {
        result = tool ? await tool.run(JSON.parse(call.function.arguments)) : `error: no tool ${call.function.name}`;
      } catch (e) {
        result = `error: ${e.message}`;  // the model sees the failure and can try again
      }
      calls.push({ name: call.function.name, arguments: call.function.arguments, result });
      log(`round ${round + 1}: ${call.function.name}(${call.function.arguments}) -> ${result.slice(0, 120).replace(/\n/g, ' | ')}`);
      messages.push({ role: 'tool', tool_call_id: call.id, content: result });
    }
  }
  throw new Error(`no answer after ${plan.length} rounds`);
}
