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
  // n > 1 with an adapter by name: the batch's rows all use it.
  const nq = await model.chat.completions.create({ model: 'qv', messages, n: 2, seed: 4, temperature: 1.2, max_tokens: 6 });
  const bq = model.generateBatch([0, 1].map(() => ({ prompt: messages, adapter: 'qv' })), { seed: 4, temperature: 1.2, maxTokens: 6 });
  assert.deepEqual(nq.choices.map((x) => x.message.content), await bq.texts());
  const base = await model.chat.completions.create({ model: 'base', messages, temperature: 0, max_tokens: 8 });
  assert.equal(base.choices[0].message.content, await model.generate(messages, greedy).text());
  const stacked = await model.chat.completions.create({ messages, adapters: [{ name: 'qv', weight: 0.5 }], temperature: 0, max_tokens: 8 });
  assert.equal(stacked.choices[0].message.content, await model.generate(messages, { ...greedy, adapters: [{ name: 'qv', weight: 0.5 }] }).text());
  await assert.rejects(model.chat.completions.create({ model: 'nope', messages }), api.AdapterError);
  await assert.rejects(model.chat.completions.create({ messages, top_logprobs: 2 }), api.ConfigError);
  await assert.rejects(model.chat.completions.create({ messages, logprobs: true, top_logprobs: 21 }), api.ConfigError);
  await assert.rejects(model.chat.completions.create({ messages, frequency_penalty: 2.5 }), api.ConfigError);
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
  await assert.rejects(client.chat.completions.create({ model: 'qv', messages, top_logprobs: 3 }), (e) => e instanceof OpenAI.APIError && e.status === 400);
});

/** Log-softmax of one row of logits, in f64. */
function logSoftmax(row) {
  const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
  const lse = max + Math.log(row.reduce((a, l) => a + Math.exp(l - max), 0));
  return Array.from(row, (l) => l - lse);
}

test('logprobs and frequency/presence penalties follow OpenAI, checked against forward() logits', async () => {
  const V = model.info.vocabSize;
  const prompt = model.tokenize(model.applyChatTemplate(messages));
  // Greedy with penalties, step by step from forward()'s logits: the reference.
  const [freq, pres] = [1.3, 0.6];
  const want = [];
  const wantLp = [];
  for (let step = 0; step < 6; step++) {
    const logits = await model.forward([...prompt, ...want], { adapter: 'qv' });
    const row = Array.from(logits.subarray(logits.length - V));
    for (const t of new Set(want)) row[t] -= want.filter((x) => x === t).length * freq + pres;
    const lp = logSoftmax(row);
    const t = lp.reduce((b, v, i) => (v > lp[b] ? i : b), 0);
    wantLp.push({ t, lp, top: lp.map((v, i) => [i, v]).sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 4) });
    want.push(t);
  }
  const params = { model: 'qv', messages, temperature: 0, max_tokens: 6, frequency_penalty: freq, presence_penalty: pres, logprobs: true, top_logprobs: 4 };
  const c = await model.chat.completions.create(params);
  assert.equal(c.usage.prompt_tokens, prompt.length);
  const content = c.choices[0].logprobs.content;
  const g = model.generate(messages, { temperature: 0, maxTokens: 6, adapter: 'qv', frequencyPenalty: freq, presencePenalty: pres });
  await g.text();
  assert.deepEqual(g.tokens, want.slice(0, g.tokens.length), 'greedy tokens under the penalties');
  // Without the penalties the answer differs (they act), with them it is the reference's.
  const plain = model.generate(messages, { temperature: 0, maxTokens: 6, adapter: 'qv' });
  await plain.text();
  assert.notDeepEqual(plain.tokens, g.tokens);
  const n = g.finishReason === 'stop' ? g.tokens.length - 1 : g.tokens.length;
  assert.equal(content.length, n);
  assert.ok(n >= 3, `${n} tokens`);
  let worst = 0;
  content.forEach((e, i) => {
    const r = wantLp[i];
    assert.equal(new TextDecoder().decode(Uint8Array.from(e.bytes)), e.token);
    assert.equal(e.top_logprobs.length, 4);
    assert.deepEqual(e.top_logprobs.map((x) => x.token), r.top.map(([t]) => model.detokenize([t])));
    for (const [x, [t, v]] of [[e, [r.t, r.lp[r.t]]], ...e.top_logprobs.map((x, j) => [x, r.top[j]])]) {
      assert.equal(x.token, model.detokenize([t]));
      worst = Math.max(worst, Math.abs(x.logprob - v));
    }
  });
  assert.ok(worst < 1e-4, `logprobs differ from forward()'s log-softmax by ${worst}`);
  console.log(`logprobs of ${n} tokens × 5: worst difference from forward()'s log-softmax ${worst.toExponential(2)}`);
  // Streamed: the chunks' logprobs together are the same entries.
  const chunks = [];
  for await (const k of await model.chat.completions.create({ ...params, stream: true })) chunks.push(k);
  assert.deepEqual(chunks.flatMap((k) => k.choices.flatMap((x) => x.logprobs?.content ?? [])), content);
  // n > 1: each choice has its own.
  const two = await model.chat.completions.create({ ...params, n: 2, temperature: 0.9, seed: 3 });
  for (const ch of two.choices) assert.ok(ch.logprobs.content.length >= 1 && ch.logprobs.content.every((e) => e.logprob <= 0 && e.top_logprobs.length === 4));
  // Off by default.
  assert.equal((await model.chat.completions.create({ ...params, logprobs: false, top_logprobs: undefined })).choices[0].logprobs, null);
});
