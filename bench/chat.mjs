// npm run bench, part 4: chat turns with prefix reuse (issue 19) on SmolLM2-135M-Instruct Q4_1,
// CPU backend in Node. Turn 2 of a ~1,000-token conversation starts from turn 1's KV cache:
// its time to first token is set beside the prefill of its new tokens alone (target ≤ 1.2×).
const PKG = process.env.LORAFUSE_PKG ?? 'pkg-dev';
const api = await import(`../${PKG}/index.js`);
const MODEL = new URL('../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf', import.meta.url);
const REPS = Number(process.env.BENCH_ROUNDS ?? 3);

const rt = await api.LoraRuntime.create({ backend: 'cpu' });
const model = await rt.loadModel(MODEL);
const question = 'Tell me about the history of the printing press and how it changed the way people shared ideas.';
const answer =
  'The printing press was developed by Johannes Gutenberg around 1440. Movable metal type made books far cheaper, ' +
  'so pamphlets, bibles and scientific works spread across Europe within decades, and literacy rose with them.';
const history = [{ role: 'system', content: 'You are a helpful assistant.' }];
while (model.tokenize(model.applyChatTemplate(history)).length < 1000) history.push({ role: 'user', content: question }, { role: 'assistant', content: answer });
history.push({ role: 'user', content: question });
const turn2 = [...history, { role: 'assistant', content: answer }, { role: 'user', content: 'And what came after it?' }];
const [text1, text2] = [history, turn2].map((m) => model.applyChatTemplate(m, { addGenerationPrompt: true }));
if (!text2.startsWith(text1)) throw new Error('turn 2 does not extend turn 1');

const now = () => performance.now();
/** Time to first token (prompt prefill + one pick) and the prompt tokens the cache served. */
async function ttft(prompt, promptCache) {
  const g = model.generate(prompt, { maxTokens: 1, promptCache });
  const t0 = now();
  await g.text();
  return { ms: now() - t0, cached: g.cachedTokens };
}
const rows = [];
for (let r = 0; r < REPS; r++) {
  model.clearPromptCache();
  const cold = await ttft(text1, true);
  const warm = await ttft(text2, true);
  // The new tokens alone: turn 2's text past turn 1's, from an empty cache.
  const alone = await ttft(text2.slice(text1.length), false);
  rows.push({ cold, warm, alone });
}
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
const n1 = model.tokenize(text1).length, n2 = model.tokenize(text2).length;
const aloneTokens = model.tokenize(text2.slice(text1.length)).length;
const [cold, warm, alone] = ['cold', 'warm', 'alone'].map((k) => median(rows.map((x) => x[k].ms)));
console.log(`\n### Chat turn 2 with prefix reuse: SmolLM2-135M-Instruct Q4_1, CPU (Node ${process.version}), median of ${REPS}\n`);
console.log('| step | prompt tokens | served from the cache | time to first token, ms |');
console.log('|---|---|---|---|');
console.log(`| turn 1 (empty cache) | ${n1} | ${rows[0].cold.cached} | ${cold.toFixed(0)} |`);
console.log(`| turn 2 (turn 1's cache) | ${n2} | ${rows[0].warm.cached} | ${warm.toFixed(0)} |`);
console.log(`| turn 2's new text alone (no cache) | ${aloneTokens} | 0 | ${alone.toFixed(0)} |`);
console.log(`\nturn 2 / its new tokens alone: ${(warm / alone).toFixed(2)}× (target ≤ 1.2×); turn 2 without the cache would prefill ${n2} tokens (turn 1's ${n1} took ${cold.toFixed(0)} ms)`);
