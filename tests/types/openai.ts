// The OpenAI-style chat API against the openai package's own types (tsc --noEmit in npm test):
// their request types are accepted, and our responses are theirs.
import OpenAI from 'openai';
import { LoraRuntime } from 'lorafuse';
import { LoraWorker } from 'lorafuse/worker';

async function chat(): Promise<void> {
  const model = await (await LoraRuntime.create()).loadModel('/models/model.gguf');
  const params: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming = {
    model: 'pirate',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
    temperature: 0.7, max_tokens: 64, seed: 1, stop: ['\n\n'], n: 2, response_format: { type: 'text' },
  };
  const ours = await model.chat.completions.create(params);
  const c: OpenAI.Chat.ChatCompletion = ours;
  const lp: OpenAI.Chat.ChatCompletionTokenLogprob[] | null | undefined = c.choices[0].logprobs?.content;
  const withLogprobs: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming = { ...params, logprobs: true, top_logprobs: 3, frequency_penalty: 0.5, presence_penalty: 0.2 };
  console.log(lp?.[0]?.top_logprobs[0]?.bytes, (await model.chat.completions.create(withLogprobs)).choices[0].logprobs?.content?.[0].logprob);
  const usage: OpenAI.CompletionUsage | undefined = c.usage;
  console.log(c.choices[0].message.content, usage?.prompt_tokens_details?.cached_tokens, ours.usage.extra.decode_tokens_per_s);
  const streaming: OpenAI.Chat.ChatCompletionCreateParamsStreaming = { ...params, n: 1, stream: true, stream_options: { include_usage: true } };
  for await (const chunk of await model.chat.completions.create(streaming)) {
    const theirs: OpenAI.Chat.ChatCompletionChunk = chunk;
    console.log(theirs.choices[0]?.delta.content ?? '', theirs.usage?.total_tokens);
  }
  // The openai SDK itself, answered by the model.
  const client = new OpenAI({ apiKey: 'local', baseURL: 'http://lorafuse.local/v1', fetch: model.chat.fetch });
  const r = await client.chat.completions.create({ model: 'base', messages: [{ role: 'user', content: 'Hi' }] });
  console.log(r.choices[0].message.content);
  // Through the worker too.
  const w = await (await LoraWorker.create()).loadModel('/models/model.gguf');
  const wc: OpenAI.Chat.ChatCompletion = await w.chat.completions.create(params);
  for await (const chunk of await w.chat.completions.create(streaming)) console.log((chunk satisfies OpenAI.Chat.ChatCompletionChunk).choices.length);
  console.log(wc.id, new OpenAI({ apiKey: 'local', fetch: w.chat.fetch }).baseURL);
}
void chat();
