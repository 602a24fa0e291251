// A real customer: the official Anthropic SDK against the proxy.
// Prints one JSON object with what each call saw; the Go test asserts on it.
import Anthropic from '@anthropic-ai/sdk';

const baseURL = process.env.PROXY_URL;
const out = {};
const client = new Anthropic({ baseURL, apiKey: process.env.CLIENT_KEY, maxRetries: 0 });
const ask = { model: 'claude-sonnet-4-5-20250929', max_tokens: 64, messages: [{ role: 'user', content: 'Hello from the SDK' }] };

const msg = await client.messages.create(ask);
out.plain = { type: msg.type, text: msg.content[0].text, usage: msg.usage };

const stream = client.messages.stream(ask);
let text = '';
let events = 0;
stream.on('text', (t) => { text += t; });
stream.on('streamEvent', () => { events++; });
const final = await stream.finalMessage();
out.stream = { text, events, usage: final.usage, stop_reason: final.stop_reason };

const count = await client.messages.countTokens({ model: ask.model, messages: ask.messages });
out.count = count;

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

for (const [name, c, req] of [
  ['badkey', new Anthropic({ baseURL, apiKey: 'sk-cli-v1-' + 'x'.repeat(31), maxRetries: 0 }), ask],
  ['opus', client, { ...ask, model: 'claude-opus-4-1-20250805' }],
]) {
  try {
    await c.messages.create(req);
    out[name] = { ok: true };
  } catch (e) {
    out[name] = { status: e.status, cls: e.constructor.name, type: e.error?.error?.type, message: e.error?.error?.message };
  }
}
console.log(JSON.stringify(out));
