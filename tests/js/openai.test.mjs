// The OpenAI-style chat API in Node (tiny fixture model, CPU): its answers are generate()'s,
// its objects have OpenAI's shape, and the openai SDK itself runs against model.chat.fetch.
import test from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import * as api from '../../pkg/index.js';

const TINY = new URL('../fixtures/tiny/', import.meta.url);
const rt = await api.LoraRuntime.create({ backend: 'cpu' });
const model = await rt.loadModel(new URL('llama-hf/', TINY).href);
await model.loadAdapter('qv', new URL('adapters/qv-r4/', TINY).href);
const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Name a colour.' }];
const greedy = { temperature: 0, maxTokens: 8, ignoreEos: true };

test('create() answers as generate() does, in OpenAI\'s shapes, streamed or not', async () => {
  const want = await model.generate(messages, { ...greedy, adapter: 'qv' }).text();
  const c = await model.chat.completions.create({ model: 'qv', messages, temperature: 0, max_tokens: 8 });
  assert.equal(c.object, 'chat.completion');
  assert.match(c.id, /^chatcmpl-/);
  assert.ok(Number.isInteger(c.created) && c.model === 'qv');
  assert.equal(c.choices.length, 1);
  const [ch] = c.choices;
  assert.deepEqual([ch.index, ch.message.role, ch.message.refusal, ch.logprobs], [0, 'assistant', null, null]);
  assert.equal(ch.message.content, want);
  assert.ok(['stop', 'length'].includes(ch.finish_reason));
  const prompt = model.tokenize(model.applyChatTemplate(messages)).length;
  assert.ok(c.usage.prompt_tokens >= prompt && c.usage.completion_tokens >= 1, JSON.stringify(c.usage));
  assert.equal(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens);
  // The same request once more: served from the prefix cache.
  const again = await model.chat.completions.create({ model: 'qv', messages, temperature: 0, max_tokens: 8 });
  assert.equal(again.choices[0].message.content, want);
  assert.ok(again.usage.prompt_tokens_details.cached_tokens > 0);
  assert.ok(again.usage.extra.time_to_first_token_s > 0 && again.usage.extra.prefill_tokens_per_s > 0);

  const stream = await model.chat.completions.create({ model: 'qv', messages, temperature: 0, max_tokens: 8, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const k of stream) chunks.push(k);
  assert.ok(chunks.every((k) => k.object === 'chat.completion.chunk' && k.id === chunks[0].id));
  assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  const text = chunks.flatMap((k) => k.choices).map((x) => x.delta.content ?? '').join('');
  assert.equal(text, want);
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, c.usage.completion_tokens);
  assert.ok(chunks.slice(0, -1).every((k) => k.usage === null));
  assert.ok(['stop', 'length'].includes(chunks.at(-2).choices[0].finish_reason));
});

test('n choices are a batch; model names an adapter or the base; unsupported requests are typed errors', async () => {
  const c = await model.chat.completions.create({ messages, n: 3, seed: 4, temperature: 1.2, max_tokens: 6 });
  assert.deepEqual(c.choices.map((x) => x.index), [0, 1, 2]);
  const batch = model.generateBatch([0, 1, 2].map(() => ({ prompt: messages })), { seed: 4, temperature: 1.2, topP: 1, maxTokens: 6 });
  assert.deepEqual(c.choices.map((x) => x.message.content), await batch.texts());
  assert.equal(c.usage.completion_tokens, [0, 1, 2].reduce((a, i) => a + batch.tokens(i).length, 0));
  const base = await model.chat.completions.create({ model: 'base', messages, temperature: 0, max_tokens: 8 });
  assert.equal(base.choices[0].message.content, await model.generate(messages, greedy).text());
  const stacked = await model.chat.completions.create({ messages, adapters: [{ name: 'qv', weight: 0.5 }], temperature: 0, max_tokens: 8 });
  assert.equal(stacked.choices[0].message.content, await model.generate(messages, { ...greedy, adapters: [{ name: 'qv', weight: 0.5 }] }).text());
  await assert.rejects(model.chat.completions.create({ model: 'nope', messages }), api.AdapterError);
  await assert.rejects(model.chat.completions.create({ messages, logprobs: true }), api.UnsupportedError);
  await assert.rejects(model.chat.completions.create({ messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', format: 'email' } } } }), api.UnsupportedError);
  await assert.rejects(model.chat.completions.create({ messages, response_format: { type: 'grammar' } }), api.UnsupportedError);
  await assert.rejects(model.chat.completions.create({ messages, tools: [] }), api.ConfigError);
  await assert.rejects(model.chat.completions.create({ messages: [{ role: 'tool', content: 'x' }] }), api.UnsupportedError);
  await assert.rejects(model.chat.completions.create({ messages, n: 0 }), api.ConfigError);
});

test('the openai SDK runs against model.chat.fetch: completions, streams and errors', async () => {
  const client = new OpenAI({ apiKey: 'local', baseURL: 'http://lorafuse.local/v1', fetch: model.chat.fetch, maxRetries: 0 });
  const want = await model.generate(messages, { ...greedy, adapter: 'qv' }).text();
  const c = await client.chat.completions.create({ model: 'qv', messages, temperature: 0, max_tokens: 8 });
  assert.equal(c.choices[0].message.content, want);
  const stream = await client.chat.completions.create({ model: 'qv', messages, temperature: 0, max_tokens: 8, stream: true, stream_options: { include_usage: true } });
  let text = '', usage;
  for await (const k of stream) {
    text += k.choices[0]?.delta?.content ?? '';
    usage = k.usage ?? usage;
  }
  assert.equal(text, want);
  assert.ok(usage.completion_tokens >= 1);
  await assert.rejects(client.chat.completions.create({ model: 'nope', messages }), (e) => e instanceof OpenAI.APIError && e.status === 404 && /no adapter named "nope"/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'qv', messages, logprobs: true }), (e) => e instanceof OpenAI.APIError && e.status === 400);
});
