// A real OpenAI-format customer: the official openai SDK against the
// proxy's /v1/chat/completions. Prints one JSON object; the Go test asserts.
import OpenAI from 'openai';

const baseURL = process.env.PROXY_URL + '/v1';
const out = {};
const client = new OpenAI({ baseURL, apiKey: process.env.CLIENT_KEY, maxRetries: 0 });
const model = 'claude-sonnet-4-5-20250929';

const plain = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello from openai' }] });
out.plain = { object: plain.object, text: plain.choices[0].message.content, finish: plain.choices[0].finish_reason, usage: plain.usage };

// Streamed with usage: record when each chunk arrives.
const t0 = Date.now();
const stream = await client.chat.completions.create({ model, stream: true, stream_options: { include_usage: true },
  messages: [{ role: 'user', content: 'Stream please' }] });
let text = '';
const times = [];
let usage = null;
let finish = null;
for await (const ch of stream) {
  times.push(Date.now() - t0);
  if (ch.choices[0]?.delta?.content) text += ch.choices[0].delta.content;
  if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
  if (ch.usage) usage = ch.usage;
}
out.stream = { text, times, usage, finish };

// Tool-call round trip.
const tools = [{ type: 'function', function: { name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
const messages = [{ role: 'user', content: 'Paris' }];
const call = await client.chat.completions.create({ model, tools, messages });
const msg = call.choices[0].message;
messages.push(msg);
for (const tc of msg.tool_calls ?? []) {
  messages.push({ role: 'tool', tool_call_id: tc.id, content: 'Sunny, 18 degrees' });
}
const answer = await client.chat.completions.create({ model, tools, messages });
out.tools = { finish: call.choices[0].finish_reason, calls: msg.tool_calls, answer: answer.choices[0].message.content };

// An image as a data: URL (a 1x1 PNG).
const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
const img = await client.chat.completions.create({ model, messages: [{ role: 'user', content: [
  { type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,' + png } }] }] });
out.image = { text: img.choices[0].message.content };

const fail = async (name, c, req) => {
  try {
    await c.chat.completions.create(req);
    out[name] = { ok: true };
  } catch (e) {
    out[name] = { status: e.status, cls: e.constructor.name, type: e.type, code: e.code, message: e.message, retry_after: e.headers?.get?.('retry-after') ?? null };
  }
};
await fail('badkey', new OpenAI({ baseURL, apiKey: 'sk-cli-v1-' + 'x'.repeat(31), maxRetries: 0 }), { model, messages });
if (process.env.QUOTA_KEY) {
  const q = new OpenAI({ baseURL, apiKey: process.env.QUOTA_KEY, maxRetries: 0 });
  for (let i = 0; i < Number(process.env.QUOTA_LIMIT); i++) {
    await q.chat.completions.create({ model, messages: [{ role: 'user', content: 'use up' }] });
  }
  await fail('quota', q, { model, messages: [{ role: 'user', content: 'one too many' }] });
}
console.log(JSON.stringify(out));
