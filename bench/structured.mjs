// npm run bench, part 5: structured output's cost (issue 19) on SmolLM2-135M-Instruct Q4_1,
// CPU backend in Node. Decode ms per token with a JSON schema (first request: every mask
// computed; again: masks remembered) beside the same prompt unconstrained (target: the
// mask ≤ 10% of a decode step). The token streams differ, so the figure is per token.
const PKG = process.env.LORAFUSE_PKG ?? 'pkg-dev';
const api = await import(`../${PKG}/index.js`);
const MODEL = new URL('../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf', import.meta.url);

const rt = await api.LoraRuntime.create({ backend: 'cpu' });
const model = await rt.loadModel(MODEL);
const messages = [{ role: 'user', content: 'Describe a person as JSON: name, age, city, hobbies.' }];
const schema = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 40 }, age: { type: 'integer', minimum: 0, maximum: 120 }, city: { type: 'string' }, hobbies: { type: 'array', items: { type: 'string' }, maxItems: 4 } },
  required: ['name', 'age', 'city', 'hobbies'],
};
const run = async (opts) => {
  const g = model.generate(messages, { maxTokens: 64, promptCache: false, ...opts });
  await g.text();
  const u = g.usage;
  return { tokens: u.completionTokens, msPerToken: 1000 / u.decodeTokensPerS };
};
const rows = [];
for (let round = 0; round < 3; round++) {
  rows.push(['none', await run({ ignoreEos: true })]);
  // A new schema each round (an unused key): its masks are computed afresh.
  const fresh = { ...schema, title: `round ${round}` };
  rows.push(['schema, first', await run({ responseFormat: { type: 'json_schema', json_schema: { name: 'p', schema: { ...fresh, properties: { ...schema.properties, [`k${round}`]: { type: 'boolean' } } } } } })]);
  rows.push(['schema, again', await run({ responseFormat: { type: 'json_schema', json_schema: { name: 'p', schema: { ...fresh, properties: { ...schema.properties, [`k${round}`]: { type: 'boolean' } } } } } })]);
  rows.push(['json_object', await run({ responseFormat: { type: 'json_object' } })]);
}
const best = (k) => Math.min(...rows.filter((r) => r[0] === k).map((r) => r[1].msPerToken));
const base = best('none');
console.log('| constraint | decode ms/token (best of 3) | vs none |\n|---|---|---|');
for (const k of ['none', 'schema, first', 'schema, again', 'json_object']) console.log(`| ${k} | ${best(k).toFixed(1)} | ${(best(k) / base).toFixed(3)}× |`);
