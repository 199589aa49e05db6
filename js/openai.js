// OpenAI-style chat completions over Model.generate / generateBatch: requests and responses
// shaped as the openai package's ChatCompletionCreateParams, ChatCompletion and
// ChatCompletionChunk (checked against its types in npm test), the adapter chosen per request
// by `model` (an adapter's name, or "base") or the `adapters` extension.
import { ConfigError, UnsupportedError } from './errors.js';

const PARAMS = new Set([
  'messages', 'model', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'seed',
  'stop', 'n', 'logprobs', 'top_logprobs', 'response_format', 'frequency_penalty', 'presence_penalty', 'user', 'store',
  'metadata', 'parallel_tool_calls',
  // Extensions: a weighted adapter stack, and samplers OpenAI does not have (as vLLM names them).
  'adapters', 'top_k', 'min_p', 'repetition_penalty',
]);
const ROLES = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant' };
/** Choices per request at most: they run as one batch. */
const MAX_N = 16;

/** Message content as text: a string, or text parts. */
function text(content, i) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((p) => {
      if (p?.type === 'text' && typeof p.text === 'string') return p.text;
      throw new UnsupportedError(`messages[${i}]: content parts of type ${JSON.stringify(p?.type)} (only "text" is read)`);
    }).join('');
  }
  throw new ConfigError(`messages[${i}].content must be a string or an array of text parts`);
}

/** The request as generate()'s messages and options, and n. */
function translate(model, p) {
  if (!p || typeof p !== 'object') throw new ConfigError('chat.completions.create takes a request object');
  for (const k of Object.keys(p)) if (!PARAMS.has(k)) throw new ConfigError(`unknown chat completion parameter ${JSON.stringify(k)}`);
  if (!Array.isArray(p.messages) || !p.messages.length) throw new ConfigError('messages must be a non-empty array');
  const messages = p.messages.map((m, i) => {
    const role = ROLES[m?.role];
    if (!role) throw new UnsupportedError(`messages[${i}].role ${JSON.stringify(m?.role)} (system, developer, user and assistant are read)`);
    return { role, content: text(m.content, i) };
  });
  const unsupported = (what) => {
    throw new UnsupportedError(`${what} is not supported`);
  };
  if (p.top_logprobs != null && !p.logprobs) throw new ConfigError('top_logprobs needs logprobs: true');
  const format = p.response_format?.type ?? 'text';
  if (!['text', 'json_object', 'json_schema'].includes(format)) unsupported(`response_format ${JSON.stringify(format)}`);
  const n = p.n ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > MAX_N) throw new ConfigError(`n must be an integer from 1 to ${MAX_N}`);
  const opts = {
    // OpenAI's defaults: temperature 1, top_p 1, and no limit but the context.
    temperature: p.temperature ?? 1,
    topP: p.top_p ?? 1,
    maxTokens: p.max_completion_tokens ?? p.max_tokens ?? model.info.contextLength,
  };
  if (format !== 'text') opts.responseFormat = p.response_format;
  if (p.seed != null) opts.seed = p.seed;
  if (p.stop != null) opts.stop = Array.isArray(p.stop) ? p.stop : [p.stop];
  if (p.top_k != null) opts.topK = p.top_k;
  if (p.min_p != null) opts.minP = p.min_p;
  if (p.repetition_penalty != null) opts.repetitionPenalty = p.repetition_penalty;
  if (p.frequency_penalty != null) opts.frequencyPenalty = p.frequency_penalty;
  if (p.presence_penalty != null) opts.presencePenalty = p.presence_penalty;
  if (p.logprobs) opts.logprobs = true;
  if (p.top_logprobs != null) opts.topLogprobs = p.top_logprobs;
  const name = p.model;
  const base = name == null || name === 'base' || name === model.info.name;
  if (p.adapters != null) {
    if (!base) throw new ConfigError('give model (an adapter) or adapters, not both');
    opts.adapters = p.adapters;
  } else if (!base) {
    opts.adapter = name;
  }
  return { messages, opts, n, modelName: name ?? model.info.name };
}

const FINISH = { stop: 'stop', length: 'length', context: 'length' };

/** OpenAI's usage, plus `extra` (as WebLLM names it): time to first token and rates. */
function usage(u) {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
    extra: {
      time_to_first_token_s: u.timeToFirstTokenMs / 1000,
      prefill_tokens_per_s: u.prefillTokensPerS,
      decode_tokens_per_s: u.decodeTokensPerS,
    },
  };
}

/** Usage summed over a batch's rows (their time is shared). */
function sum(us) {
  const [first] = us;
  return { ...first, completionTokens: us.reduce((a, u) => a + u.completionTokens, 0) };
}

let counter = 0;
const newId = () => `chatcmpl-${Date.now().toString(36)}${(counter++).toString(36)}`;

/**
 * `model.chat.completions.create(params, {signal})`: resolves to a ChatCompletion, or with
 * `stream: true` to an async iterable of ChatCompletionChunks.
 */
export async function createChatCompletion(model, params, { signal } = {}) {
  const { messages, opts, n, modelName } = translate(model, params);
  const head = { id: newId(), created: Math.floor(Date.now() / 1000), model: modelName, system_fingerprint: `lorafuse-${model.info.backend}` };
  const rows = n === 1 ? [model.generate(messages, { ...opts, signal })] : null;
  // A batch takes the adapters per item.
  const { adapter, adapters, ...shared } = opts;
  const item = { prompt: messages, ...(adapter != null ? { adapter } : {}), ...(adapters != null ? { adapters } : {}) };
  const batch = rows ? null : model.generateBatch(Array.from({ length: n }, () => item), { ...shared, signal });
  const rowUsage = (i) => (rows ? rows[0].usage : batch.usage(i));
  const finish = (i) => FINISH[rows ? rows[0].finishReason : batch.finishReason(i)] ?? 'stop';
  // Log-probabilities per row: each chunk carries those of the tokens since the last one.
  const rowLogprobs = (i) => (rows ? rows[0].logprobs : batch.logprobs(i));
  const sent = new Array(n).fill(0);
  const logprobs = (i, rest = false) => {
    if (!opts.logprobs) return null;
    const all = rowLogprobs(i);
    const content = all.slice(sent[i]);
    sent[i] = all.length;
    return content.length || !rest ? { content, refusal: null } : null;
  };
  if (!params.stream) {
    const texts = rows ? [await rows[0].text()] : await batch.texts();
    return {
      ...head,
      object: 'chat.completion',
      choices: texts.map((content, index) => ({ index, message: { role: 'assistant', content, refusal: null }, logprobs: logprobs(index), finish_reason: finish(index) })),
      usage: usage(sum(texts.map((_, i) => rowUsage(i)))),
    };
  }
  const includeUsage = !!params.stream_options?.include_usage;
  const chunk = (choices, extra = {}) => ({ ...head, object: 'chat.completion.chunk', choices, ...(includeUsage ? { usage: null } : {}), ...extra });
  const streams = rows ?? batch.streams;
  return {
    async *[Symbol.asyncIterator]() {
      for (let index = 0; index < n; index++) yield chunk([{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
      // Rows' pieces as they come (a batch steps all rows together).
      for await (const [index, piece] of merge(streams)) {
        yield chunk([{ index, delta: { content: piece }, logprobs: logprobs(index), finish_reason: null }]);
      }
      for (let index = 0; index < n; index++) yield chunk([{ index, delta: {}, logprobs: logprobs(index, true), finish_reason: finish(index) }]);
      if (includeUsage) yield chunk([], { usage: usage(sum(streams.map((_, i) => rowUsage(i)))) });
    },
  };
}

/** [row, piece] from several async iterables, in the order pieces arrive. */
async function* merge(iterables) {
  const its = iterables.map((s) => s[Symbol.asyncIterator]());
  const next = (i) => its[i].next().then((r) => ({ i, r }));
  const pending = new Map(its.map((_, i) => [i, next(i)]));
  while (pending.size) {
    const { i, r } = await Promise.race(pending.values());
    if (r.done) {
      pending.delete(i);
      continue;
    }
    pending.set(i, next(i));
    yield [i, r.value];
  }
}

/**
 * A `fetch` that answers OpenAI's POST /chat/completions from `model`, so that code written
 * for the openai SDK runs on it unchanged: `new OpenAI({apiKey: 'local', baseURL:
 * 'http://lorafuse.local/v1', fetch: model.chat.fetch})`. Streams come as server-sent
 * events; errors as OpenAI's error bodies (status 400; 404 for an unknown adapter).
 * `create` is the model's `chat.completions.create` (in this thread or through a worker).
 */
export function chatFetch(create) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (!url.pathname.endsWith('/chat/completions') || (init.method ?? 'GET').toUpperCase() !== 'POST') {
      return errorResponse(404, `lorafuse answers POST /chat/completions only, not ${init.method ?? 'GET'} ${url.pathname}`, 'not_found');
    }
    let params;
    try {
      params = JSON.parse(typeof init.body === 'string' ? init.body : new TextDecoder().decode(init.body));
    } catch (e) {
      return errorResponse(400, `the request body is not JSON: ${e.message}`, 'invalid_request_error');
    }
    let result;
    try {
      result = await create(params, { signal: init.signal });
    } catch (e) {
      return errorResponse(e?.name === 'AdapterError' ? 404 : 400, e?.message ?? String(e), e?.name ?? 'Error');
    }
    if (!params.stream) return new Response(JSON.stringify(result), { status: 200, headers: { 'content-type': 'application/json' } });
    const enc = new TextEncoder();
    const it = result[Symbol.asyncIterator]();
    const body = new ReadableStream({
      async pull(ctl) {
        try {
          const { value, done } = await it.next();
          if (done) {
            ctl.enqueue(enc.encode('data: [DONE]\n\n'));
            ctl.close();
          } else {
            ctl.enqueue(enc.encode(`data: ${JSON.stringify(value)}\n\n`));
          }
        } catch (e) {
          ctl.enqueue(enc.encode(`data: ${JSON.stringify({ error: { message: e?.message ?? String(e), type: e?.name ?? 'Error' } })}\n\n`));
          ctl.close();
        }
      },
      cancel() {
        it.return?.();
      },
    });
    return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
  };
}

function errorResponse(status, message, type) {
  return new Response(JSON.stringify({ error: { message, type, param: null, code: null } }), { status, headers: { 'content-type': 'application/json' } });
}
