// Clients of OpenAI's Responses API against the proxy's /v1/responses: the
// official openai SDK (plain, streamed, a tool round trip), the Vercel AI
// SDK's default OpenAI provider, and LangChain's withStructuredOutput (over
// chat completions). Prints one JSON object; the Go test asserts.
import OpenAI from 'openai';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import { ChatOpenAI } from '@langchain/openai';

const baseURL = process.env.PROXY_URL + '/v1';
const apiKey = process.env.CLIENT_KEY;
const model = 'claude-sonnet-4-5-20250929';
const out = {};
const attempt = async (name, f) => {
  try {
    out[name] = await f();
  } catch (e) {
    out[name] = { error: String(e?.stack ?? e), status: e?.status };
  }
};

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });

await attempt('plain', async () => {
  const r = await client.responses.create({ model, instructions: 'Be brief.', input: 'Hello from responses' });
  return { object: r.object, status: r.status, text: r.output_text, usage: r.usage };
});

await attempt('stream', async () => {
  const t0 = Date.now();
  const stream = await client.responses.create({ model, input: 'Stream please', stream: true });
  const types = [];
  const times = [];
  let text = '';
  let usage = null;
  for await (const ev of stream) {
    if (types[types.length - 1] !== ev.type) types.push(ev.type);
    if (ev.type === 'response.output_text.delta') {
      text += ev.delta;
      times.push(Date.now() - t0);
    }
    if (ev.type === 'response.completed') usage = ev.response.usage;
  }
  return { types, text, times, usage };
});

await attempt('tools', async () => {
  const tools = [{ type: 'function', name: 'weather', description: 'Weather now', strict: false,
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  const input = [{ role: 'user', content: 'Paris' }];
  const first = await client.responses.create({ model, tools, input });
  const calls = first.output.filter((o) => o.type === 'function_call');
  for (const c of calls) {
    input.push(c);
    input.push({ type: 'function_call_output', call_id: c.call_id, output: 'Sunny, 18 degrees' });
  }
  const second = await client.responses.create({ model, tools, input });
  return { calls: calls.map((c) => ({ name: c.name, arguments: c.arguments, call_id: c.call_id })), answer: second.output_text };
});

await attempt('refused', async () => {
  try {
    await client.responses.create({ model, input: 'x', previous_response_id: 'resp_123' });
    return { ok: true };
  } catch (e) {
    return { status: e.status, cls: e.constructor.name, param: e.param, message: e.message };
  }
});

// The Vercel AI SDK: its default OpenAI provider speaks the Responses API.
const provider = createOpenAI({ baseURL, apiKey });
await attempt('vercel', async () => {
  const g = await generateText({ model: provider(model), prompt: 'Hello from vercel', maxRetries: 0 });
  const s = streamText({ model: provider(model), prompt: 'Vercel stream', maxRetries: 0 });
  let text = '';
  for await (const d of s.textStream) text += d;
  return { text: g.text, finish: g.finishReason, usage: g.usage, streamed: text };
});

// LangChain's OpenAI chat model with a structured answer (response_format
// json_schema on /v1/chat/completions).
await attempt('langchain', async () => {
  const llm = new ChatOpenAI({ model, apiKey, configuration: { baseURL }, maxRetries: 0 });
  const schema = { title: 'person', type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } },
    required: ['name', 'age'], additionalProperties: false };
  const structured = llm.withStructuredOutput(schema, { name: 'person' });
  return { person: await structured.invoke('Ann is 30') };
});

console.log(JSON.stringify(out));
