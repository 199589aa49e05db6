// Structured output on SmolLM2-135M-Instruct (Node, CPU): seeded samples over 10 JSON
// schemas (nested objects, arrays, enums, bounded numbers, strings with escapes, anyOf,
// optional properties, recursion, json_object) all parse and validate under ajv, a JSON
// Schema validator written independently of lorafuse; the OpenAI API and the refusals.
// npm test takes 4 samples per schema; LORAFUSE_JSON_SAMPLES=20 runs the full 200.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import * as api from '../../pkg/index.js';

const MODEL = new URL('../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf', import.meta.url);
const rt = await api.LoraRuntime.create({ backend: 'cpu' });
const model = await rt.loadModel(new Uint8Array(readFileSync(MODEL)), { fileName: 'smollm2.gguf' });
const ajv = new Ajv2020({ strict: false });

const str = (maxLength) => ({ type: 'string', maxLength });
const CASES = [
  ['a person', { type: 'object', properties: { name: str(40), age: { type: 'integer', minimum: 0, maximum: 120 }, email: str(60) }, required: ['name', 'age', 'email'] }],
  ['an order with a customer, an address and items', {
    type: 'object',
    properties: {
      id: { type: 'integer', minimum: 1 },
      customer: { type: 'object', properties: { name: str(40), address: { type: 'object', properties: { street: str(40), city: str(30), zip: str(10) }, required: ['street', 'city', 'zip'] } }, required: ['name', 'address'] },
      items: { type: 'array', minItems: 1, maxItems: 4, items: { type: 'object', properties: { sku: str(16), qty: { type: 'integer', minimum: 1, maximum: 99 }, price: { type: 'number', minimum: 0 } }, required: ['sku', 'qty', 'price'] } },
    },
    required: ['id', 'customer', 'items'],
  }],
  ['a user account', { type: 'object', properties: { status: { enum: ['active', 'inactive', 'banned'] }, role: { const: 'user' }, level: { enum: [1, 2, 3, null] } }, required: ['status', 'role', 'level'] }],
  ['a weather report', {
    type: 'object',
    properties: { temperature: { type: 'number', minimum: -50, maximum: 60 }, humidity: { type: 'number', exclusiveMinimum: 0, maximum: 100 }, readings: { type: 'array', items: { type: 'number' }, maxItems: 5 } },
    required: ['temperature', 'humidity', 'readings'],
  }],
  ['a famous quote in "double quotes" and a Windows file path like C:\\Users\\me', { type: 'object', properties: { quote: str(100), path: str(60), author: str(40) }, required: ['quote', 'path', 'author'] }],
  ['a list of colours', { type: 'array', items: { enum: ['red', 'green', 'blue', 'yellow', 'black', 'white'] }, minItems: 2, maxItems: 5 }],
  ['the answer to a question, or null', { type: 'object', properties: { result: { anyOf: [{ type: 'integer' }, str(20), { type: 'null' }] }, ok: { type: 'boolean' } }, required: ['result', 'ok'] }],
  ['a book', { type: 'object', properties: { title: str(50), subtitle: str(50), tags: { type: 'array', items: str(20), maxItems: 4 }, year: { type: 'integer', minimum: 1900, maximum: 2030 } }, required: ['title', 'year'] }],
  ['a small family tree', {
    $defs: { node: { type: 'object', properties: { name: str(20), children: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['name'] } },
    $ref: '#/$defs/node',
  }],
  ['anything about a city', null],
];

// Short prompts (every row of a batch prefills its own): the schema is enforced, not told.
const prompt = (what) => [
  { role: 'system', content: 'You answer with JSON only.' },
  { role: 'user', content: `Write ${what} as JSON.` },
];
const PER_SCHEMA = Number(process.env.LORAFUSE_JSON_SAMPLES ?? 4);

test(`${10 * PER_SCHEMA} seeded samples over 10 schemas all parse and validate (ajv)`, async () => {
  let samples = 0;
  for (const [i, [what, schema]] of CASES.entries()) {
    const validate = ajv.compile(schema ?? { type: 'object' });
    const responseFormat = schema ? { type: 'json_schema', json_schema: { name: `case${i}`, schema } } : { type: 'json_object' };
    const rows = Array.from({ length: PER_SCHEMA }, () => ({ prompt: prompt(what) }));
    // Within maxTokens the document is closed in time, whatever the model would write.
    const batch = model.generateBatch(rows, { responseFormat, temperature: 0.9, seed: 100 * i, maxTokens: 120 });
    const texts = await batch.texts();
    for (const [r, text] of texts.entries()) {
      assert.equal(batch.finishReason(r), 'stop', `${what} #${r}: ${text}`);
      let value;
      assert.doesNotThrow(() => { value = JSON.parse(text); }, `${what} #${r}: ${text}`);
      assert.ok(validate(value), `${what} #${r}: ${JSON.stringify(validate.errors)} in ${text}`);
      samples += 1;
    }
    console.log(`${what}: ${texts[0]}`);
  }
  assert.equal(samples, 10 * PER_SCHEMA);
});

test('JSON through the OpenAI API; schemas lorafuse cannot enforce are typed errors', async () => {
  const schema = CASES[0][1];
  const c = await model.chat.completions.create({
    messages: prompt('a person'),
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
    n: 2,
    seed: 3,
    max_tokens: 80,
  });
  for (const ch of c.choices) {
    assert.equal(ch.finish_reason, 'stop');
    assert.ok(ajv.validate(schema, JSON.parse(ch.message.content)), ch.message.content);
  }
  const chunks = [];
  for await (const k of await model.chat.completions.create({ messages: prompt('a city'), response_format: { type: 'json_object' }, stream: true, seed: 1, max_tokens: 60 })) chunks.push(k);
  const text = chunks.map((k) => k.choices[0]?.delta?.content ?? '').join('');
  assert.equal(typeof JSON.parse(text), 'object', text);
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  const refuse = (schema) => model.chat.completions.create({ messages: prompt('x'), response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
  await assert.rejects(refuse({ type: 'string', pattern: '^a+$' }), api.UnsupportedError);
  await assert.rejects(refuse({ type: 'object', properties: { a: { $ref: '#' } }, required: ['a'] }), api.UnsupportedError);
  await assert.rejects(refuse({ type: 'integer', minimum: 3, maximum: 2 }), api.ConfigError);
  await assert.rejects(refuse(undefined), api.ConfigError);
  await assert.rejects(async () => model.generate('x', { responseFormat: { type: 'yaml' } }).text(), api.ConfigError);
  // The model still answers after the refusals.
  assert.ok(JSON.parse(await model.generate(prompt('a city'), { responseFormat: { type: 'json_object' }, maxTokens: 40 }).text()));
});
