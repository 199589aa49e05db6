// Child process of threads.test.mjs: SmolLM2 Q4_1 with a random all-linear r8 adapter on
// argv[2] threads; prints the prompt's last two positions of logits, 16 greedy tokens and
// the decode rate as JSON.
import { readFileSync } from 'node:fs';
import * as api from '../../pkg/index.js';
import { peftAdapter, SMOLLM2 } from './random-adapter.mjs';

const threads = Number(process.argv[2]);
const rt = await api.LoraRuntime.create({ backend: 'cpu', threads });
const bytes = readFileSync(new URL('../../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf', import.meta.url));
const model = await rt.loadModel(new Uint8Array(bytes), { fileName: 'smollm2.gguf' });
await model.loadAdapter('r8', peftAdapter(8, 11, SMOLLM2));
const ids = model.tokenize('The history of the city of Rome');
const all = await model.forward(ids, { adapter: 'r8' });
const V = model.info.vocabSize;
const g = model.generate('The history of the city of Rome', { adapter: 'r8', maxTokens: 16, promptCache: false });
await g.text();
console.log(JSON.stringify({
  threads: rt.threads, note: rt.threadsNote ?? null,
  logits: Array.from(all.subarray(all.length - 2 * V)), tokens: g.tokens, tokS: g.usage.decodeTokensPerS,
}));
