/** Base class of every error lorafuse throws on bad input or a failing backend. */
export class LoraError extends Error {}
/** Lengths or shapes that do not fit (weight, x, A, B, rows). */
export class ShapeError extends LoraError {}
/** Unknown or duplicate adapter names, bad ranks. */
export class AdapterError extends LoraError {}
/** Bad option values: NaN or infinite numbers, unknown dtypes, backends or options. */
export class ConfigError extends LoraError {}
/** The requested backend is unavailable, or the GPU failed. */
export class BackendError extends LoraError {}
/** A file that is truncated, corrupt or not what it claims to be. */
export class FormatError extends LoraError {}
/** Valid input lorafuse does not handle (yet): a quant type, an architecture. */
export class UnsupportedError extends LoraError {}
/** A hard limit, such as the model's context length, would be exceeded. */
export class LimitError extends LoraError {}
/** The operation was aborted by its AbortSignal. */
export class AbortError extends LoraError {}

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';
export type BackendName = 'webgpu' | 'cpu';
/** f32: Float32Array; f16, bf16: Uint16Array of bit patterns; q8_0, q4_0, q4_1: Uint8Array of GGUF blocks (CPU backend). */
export type WeightDtype = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1';

export interface WeightedAdapter {
  name: string;
  /** Multiplies the adapter's own scale; default 1. */
  weight?: number;
}

/** Which adapters apply; give at most one field. None: base weights only. */
export interface RunOptions {
  /** One adapter on every row; null = base only. */
  adapter?: string | null;
  /** A weighted stack on every row. */
  adapters?: WeightedAdapter[];
  /** Per row: an adapter name, null (base only) or a weighted stack. */
  adapterPerRow?: Array<string | null | WeightedAdapter[]>;
}

export interface AdapterInfo {
  name: string;
  rank: number;
  scale: number;
}

/** Bytes so far while a model or adapter loads. */
export interface LoadProgress {
  /**
   * "download" while bytes arrive (they are parsed as they come), then "parse" (CPU) or
   * "upload" (WebGPU: the weights go to the GPU) while the model is assembled, then "ready".
   * Adapters report "download" only.
   */
  stage: 'download' | 'parse' | 'upload' | 'ready';
  loaded: number;
  /** Sum of the files' sizes, when the sources tell. */
  total?: number;
  /** The file being read. */
  file: string;
}

/**
 * A model or adapter source: a URL (a folder URL ends in "/"), a Response, a Blob/File, an
 * ArrayBuffer or typed array, a list of Files, or {files: {name: any of those}}.
 */
export type ModelSource =
  | string
  | URL
  | Response
  | Blob
  | ArrayBuffer
  | ArrayBufferView
  | File[]
  | FileList
  | { files: Record<string, string | URL | Response | Blob | ArrayBuffer | ArrayBufferView> };

export interface LoadModelOptions {
  onProgress?: (p: LoadProgress) => void;
  signal?: AbortSignal;
  /** The file name when the source does not carry one (raw bytes). */
  fileName?: string;
  /** Opt-in: int8 activations for block-format weights (Q4_0 ... Q6_K) in decode: ~1.2-1.4x faster matvecs, logits ~1e-2 from exact. */
  int8Activations?: boolean;
  /** Keep fetched files in this cache; a later load reads them from there. */
  cache?: CacheOption;
  /**
   * WebGPU only (default true): when the GPU fails, reload the model and its adapters on the
   * CPU from their sources and continue running generations there.
   */
  fallback?: boolean;
  /** Called once the model has moved to the CPU. */
  onFallback?: (info: { reason: string }) => void;
}

export interface ModelInfo {
  name: string;
  architecture: 'llama' | 'qwen2' | 'qwen3' | 'mistral' | 'phi3' | 'gemma2' | 'gemma3';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  contextLength: number;
  tiedEmbeddings: boolean;
  /** Storage formats of the projections, most common first (e.g. "q4_1"). */
  quantization: string;
  embeddingFormat: string;
  weightBytes: number;
  fileBytes: number;
  backend: BackendName;
  device: string;
}

export interface ChatMessage {
  role: string;
  content: string;
}

/**
 * Where fetched files are kept: a cache name, stored in the Origin Private File System where
 * the browser can write it from a stream (written to disk as the file streams in, read back
 * from disk: nothing held in memory to be cached), else in the Cache API; or {name, storage}
 * to choose. Nothing is cached where neither exists (Node, insecure pages).
 */
export type CacheOption = string | { name: string; storage?: 'auto' | 'opfs' | 'cache-api' };

/** What a cache holds: each URL with its bytes, and their sum. */
export interface CacheUsage {
  entries: Array<{ url: string; bytes: number }>;
  bytes: number;
}

/** Which adapters a request uses: one (null = the base model) or a weighted stack. */
export interface AdapterSelection {
  adapter?: string | null;
  adapters?: WeightedAdapter[];
}

export interface GenerateOptions extends AdapterSelection {
  maxTokens?: number;
  /** 0 (the default) is greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  repeatLastN?: number;
  /**
   * OpenAI's (-2..2, default 0): subtracted from a token's logit per time it was generated
   * so far, and once if it was generated at all (the prompt does not count).
   */
  frequencyPenalty?: number;
  presencePenalty?: number;
  /** Record each generated token's log-probability (`Generation.logprobs`). */
  logprobs?: boolean;
  /** With logprobs: the most likely alternatives per token, 0..20. */
  topLogprobs?: number;
  /** Sampling is reproducible by seed. */
  seed?: number;
  /** Text that ends generation; it is never emitted. */
  stop?: string[];
  stopTokens?: number[];
  /** Keep going past end-of-sequence (benchmarks). */
  ignoreEos?: boolean;
  /**
   * Start from the KV cache of an earlier generation whose tokens begin this prompt, under
   * the same adapters (the next turn of a chat prefills only its new tokens), and leave this
   * one's cache for later prompts. Default true. Logits are those of a full prefill.
   */
  promptCache?: boolean;
  /**
   * Structured output: the text is one JSON document, any object (`json_object`) or a value
   * valid under a JSON Schema (`json_schema`), enforced on every token (a mask before
   * sampling), ending when the document closes. Schemas: type, properties (written in their
   * order), required, additionalProperties (without properties), items, min/maxItems,
   * min/maxLength, minimum/maximum and their exclusive forms, enum, const, anyOf, oneOf
   * (alternatives of distinct types), allOf of one, local $ref (recursion included);
   * other keywords (pattern, format, ...) are refused with an UnsupportedError.
   */
  responseFormat?: ResponseFormat;
  signal?: AbortSignal;
}

/** OpenAI's `response_format` (a `schema` beside `type` is read too, object or JSON text). */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object'; schema?: Record<string, unknown> | string }
  | { type: 'json_schema'; json_schema: { name?: string; schema: Record<string, unknown> | boolean; strict?: boolean | null } }
  | { type: 'json_schema'; schema: Record<string, unknown> | string };

/** Token counts and speed of one generation (of one row, in a batch). */
export interface GenerationUsage {
  promptTokens: number;
  /** Prompt tokens served by the prefix cache (not run again). */
  cachedTokens: number;
  completionTokens: number;
  timeToFirstTokenMs: number;
  /** Prompt tokens run over the time to the first token. */
  prefillTokensPerS: number;
  /** Tokens after the first over their time. */
  decodeTokensPerS: number;
}

export interface PromptCacheStats {
  entries: number;
  /** Token positions held over all entries. */
  positions: number;
  bytes: number;
  budget: number;
}

export interface ModelAdapterInfo {
  name: string;
  rank: number;
  alpha: number;
  /** The multiplier set by setAdapterScale (1 by default). */
  scale: number;
  targets: string[];
  bytes: number;
  dora: boolean;
  /**
   * How much storage rounded the factors: per rank, mean absolute rounding error over mean
   * absolute value, the worst rank of any A or B. 0 in f32 (the default); about 1.5e-5 to
   * 4e-5 in int16 for factors without outliers; about 2e-4 in f16. Past 2e-4 in int16 an
   * outlier set a rank's step, and "auto" precision stores the adapter in f32 instead.
   */
  roundingError: number;
  /** How its factors are stored (see loadAdapter's precision). */
  precision: 'f32' | 'f16' | 'i16';
}

export type Prompt = string | ChatMessage[];

/** One generation: iterate for text pieces (valid UTF-8), or await text(). */
export class Generation implements AsyncIterable<string> {
  private constructor();
  [Symbol.asyncIterator](): AsyncIterator<string>;
  text(): Promise<string>;
  readonly tokens: number[];
  readonly finishReason: 'stop' | 'length' | 'context' | 'abort' | undefined;
  /** Prompt tokens served from the prefix cache (known once iteration starts). */
  readonly cachedTokens: number;
  /** Counts and speed (complete once finished). */
  readonly usage: GenerationUsage;
  /**
   * With the logprobs option, per generated token (a final stop token aside): the softmax of
   * the logits after the penalties and the responseFormat mask, before temperature, top-k,
   * top-p and min-p; grows as the text streams.
   */
  readonly logprobs: TokenLogprob[];
}

/** OpenAI's TopLogprob: a token's text, natural-log probability and UTF-8 bytes. */
export interface TopLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
}

/** OpenAI's ChatCompletionTokenLogprob. */
export interface TokenLogprob extends TopLogprob {
  /** Best first; tokens responseFormat refused are left out. */
  top_logprobs: TopLogprob[];
}

/** Several prompts generated together; streams[i] is row i's text. */
export class BatchGeneration {
  private constructor();
  readonly streams: AsyncIterable<string>[];
  texts(): Promise<string[]>;
  tokens(i: number): number[];
  finishReason(i: number): 'stop' | 'length' | 'context' | undefined;
  cachedTokens(i: number): number;
  usage(i: number): GenerationUsage;
  /** Row i's token log-probabilities so far (with the logprobs option). */
  logprobs(i: number): TokenLogprob[];
}

export class Model {
  private constructor();
  /** Sizes, formats and the backend it runs on (changes to "cpu" after a GPU fallback). */
  readonly info: ModelInfo;
  /** Why the model moved from the GPU to the CPU, if it did. */
  readonly fallbackReason: string | undefined;
  tokenize(text: string, options?: { special?: boolean }): number[];
  detokenize(ids: ArrayLike<number>, options?: { skipSpecial?: boolean }): string;
  applyChatTemplate(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  /** Logits [ids.length × vocabSize], row-major by position. */
  forward(ids: ArrayLike<number>, options?: AdapterSelection): Promise<Float32Array>;
  generate(input: Prompt, options?: GenerateOptions): Generation;
  generateBatch(items: Array<{ prompt: Prompt } & AdapterSelection>, options?: Omit<GenerateOptions, 'adapter' | 'adapters'>): BatchGeneration;
  /** A PEFT folder (adapter_config.json + adapter_model.safetensors) or a GGUF LoRA file. */
  loadAdapter(
    name: string,
    source: ModelSource,
    options?: {
      replace?: boolean;
      signal?: AbortSignal;
      onProgress?: (p: LoadProgress) => void;
      cache?: CacheOption;
      /**
       * How this adapter's factors are stored. "auto" (default): the runtime's
       * adapterPrecision, except that int16 gives way to f32 for an adapter whose int16
       * roundingError would pass 2e-4 (an outlier setting a rank's step); or "f32" / "f16"
       * (WebGPU only) / "i16" for this adapter. Adapters of one model may differ.
       */
      precision?: 'auto' | 'f32' | 'f16' | 'i16';
    },
  ): Promise<ModelAdapterInfo>;
  unloadAdapter(name: string): void;
  setAdapterScale(name: string, scale: number): void;
  adapters(): ModelAdapterInfo[];
  /** Bytes held for adapter factors now (GPU buffers or wasm heap), all layers together. */
  adapterMemoryBytes(): number;
  /**
   * What the GPU has done since the runtime opened it: submits, bytes read back, dispatches,
   * their workgroups and the bytes they were sized to move, host ms spent in dispatch calls
   * and in submits. Null on the CPU backend. Differences between two calls give a step's.
   */
  gpuStats(): GpuStats | null;
  /**
   * OpenAI-style chat completions: the request and response shapes of the openai package
   * (ChatCompletionCreateParams, ChatCompletion, ChatCompletionChunk). `model` picks an
   * adapter by name ("base" or the model's name: none); `adapters` stacks several.
   * `response_format` json_object / json_schema constrains every choice (see
   * GenerateOptions.responseFormat); logprobs as Generation.logprobs. Unsupported: tools
   * (UnsupportedError).
   */
  readonly chat: {
    completions: {
      create(params: ChatCompletionCreateParams & { stream: true }, options?: { signal?: AbortSignal }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(params: ChatCompletionCreateParams & { stream?: false | null }, options?: { signal?: AbortSignal }): Promise<ChatCompletion>;
    };
    /** A fetch answering POST /chat/completions from this model, for the openai SDK's `fetch` option. */
    fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  };
  /** The prefix cache (default budget 128 MiB; least recently used entries go first). */
  promptCacheStats(): PromptCacheStats;
  setPromptCacheBudget(bytes: number): void;
  clearPromptCache(): void;
  dispose(): void;
}

export interface GpuStats {
  submits: number;
  readBytes: number;
  dispatches: number;
  workgroups: number;
  bytes: number;
  recordMs: number;
  submitMs: number;
}

export class LoraRuntime {
  private constructor();
  /**
   * adapterPrecision: how adapter factors are stored. "f32" (default): exact, PEFT to 1e-4
   * for any adapter. "i16" (opt-in): int16 codes with one step per rank, half the memory and
   * half the bytes adapters add to each decode step; about 1e-5 from PEFT's logits on
   * SmolLM2 for ordinary factors, but a trained adapter's worst position can pass 1e-4
   * (an adapter whose outliers int16 would round coarsely is stored in f32: loadAdapter's
   * precision "auto"). "f16": f16 on WebGPU (about 2e-4 on SmolLM2); the CPU stores int16
   * for it. `adapterPrecision` (the getter) says which runs; measurements in bench/RESULTS.md.
   * prefillMath: "f32" (default), or "f16": the prefill matmuls multiply and sum each K step
   * in f16 where the WebGPU adapter has shader-f16 (faster on GPUs with fast f16; about
   * 2e-2 relative L2 on SmolLM2's prompt logits, argmax unchanged; activations beyond
   * f16's ±65504 overflow), else f32. The `prefillMath` getter says which runs.
   * subgroups: true (default) lets the WebGPU kernels reduce with subgroup operations where
   * the adapter offers the "subgroups" feature; false keeps workgroup-memory reductions.
   * The `subgroups` getter says which runs.
   * threads: CPU threads, the calling one included: "auto" (default: the machine's cores, at
   * most 4) or 1..64. More than 1 needs shared memory: Node, or a cross-origin isolated page
   * (served with `Cross-Origin-Opener-Policy: same-origin` and
   * `Cross-Origin-Embedder-Policy: require-corp`); elsewhere the single-threaded build runs
   * and `threadsNote` says why. Page-wide: the first create() picks the build and starts the
   * workers; later calls may lower the count (or raise it back up to the workers started).
   */
  static create(options?: { backend?: BackendChoice; adapterPrecision?: 'f32' | 'f16' | 'i16'; prefillMath?: 'f32' | 'f16'; subgroups?: boolean; threads?: 'auto' | number }): Promise<LoraRuntime>;
  /**
   * Deletes a cache filled through the `cache` load option (a plain name: in both storages);
   * resolves to whether there was one.
   */
  static clearCache(cache: CacheOption): Promise<boolean>;
  /**
   * Whether loading `source` (a file URL, or a folder URL ending in "/": its config and
   * weights, every shard its index names) with this `cache` would download nothing. False
   * where the storage is missing (Node, pages that are not secure contexts).
   */
  static isCached(source: string | URL, options: { cache: CacheOption }): Promise<boolean>;
  /** Removes `source` (a file, or everything under a folder URL) from `cache`; resolves to the entries removed. */
  static deleteCached(source: string | URL, options: { cache: CacheOption }): Promise<number>;
  /** What `cache` holds: each URL with its bytes, and their sum. */
  static cacheUsage(cache: CacheOption): Promise<CacheUsage>;
  /** Bytes of wasm memory in use (it only grows: the peak so far). */
  static wasmMemoryBytes(): number;
  /** Loads a model (GGUF file or Hugging Face folder), streaming it into place. */
  loadModel(source: ModelSource, options?: LoadModelOptions): Promise<Model>;
  /** What actually runs. */
  readonly backend: BackendName;
  /** GPU adapter name, or which CPU path runs. */
  readonly device: string;
  /** How adapter factors are stored by default: "f32", "i16" or "f16" (WebGPU only). */
  readonly adapterPrecision: 'f32' | 'f16' | 'i16';
  /** "f16" when prefill matmuls multiply in f16 (asked for, WebGPU with shader-f16), else "f32". */
  readonly prefillMath: 'f32' | 'f16';
  /** Whether the WebGPU kernels reduce with subgroup operations (false on the CPU). */
  readonly subgroups: boolean;
  /** Why "auto" fell back to the CPU, when it did. */
  readonly fallbackReason: string | undefined;
  /** Threads the CPU kernels run on now (page-wide; 1 on the single-threaded build). */
  readonly threads: number;
  /** Why fewer threads run than this create() asked for, when they do (page not isolated, or the page's first create() started fewer). */
  readonly threadsNote: string | undefined;
  /** Destroys the GPU device as a driver reset would (tests of the CPU fallback). */
  loseDeviceForTesting(): void;
  /**
   * A LoRA linear layer over a frozen base weight [outFeatures, inFeatures], row-major
   * (PyTorch layout), in the storage format `dtype` (see WeightDtype).
   */
  loraLinear(options: {
    weight: Float32Array | Uint16Array | Uint8Array;
    outFeatures: number;
    inFeatures: number;
    dtype?: WeightDtype;
  }): LoraLinear;
  dispose(): void;
}

export class LoraLinear {
  private constructor();
  readonly outFeatures: number;
  readonly inFeatures: number;
  /** A [rank, in] and B [out, rank], row-major (PEFT layout); scale usually alpha / rank. */
  addAdapter(
    name: string,
    adapter: { a: Float32Array | number[]; b: Float32Array | number[]; rank: number; scale?: number },
    options?: { replace?: boolean },
  ): void;
  removeAdapter(name: string): void;
  setAdapterScale(name: string, scale: number): void;
  adapters(): AdapterInfo[];
  /** y [rows, outFeatures] for x [rows, inFeatures], row-major. */
  run(x: Float32Array | number[], rows: number, options?: RunOptions | null): Promise<Float32Array>;
  dispose(): void;
}

/**
 * A chat message as OpenAI's API takes it. Typed as broadly as the openai package's own
 * messages (so its request types are accepted as they are); what runs is system, developer,
 * user and assistant messages with string or text-part content (others: UnsupportedError).
 */
export interface ChatCompletionMessageParam {
  role: string;
  content?: string | ReadonlyArray<{ type: string; text?: string }> | null;
  name?: string;
}

export interface ChatCompletionCreateParams {
  messages: ChatCompletionMessageParam[];
  /** An adapter's name, or "base" / the model's name for none. */
  model?: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  /** Default 1, as OpenAI's. */
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  /** Choices, generated as one batch (at most 16). */
  n?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
  /** json_schema needs its `schema` (a ConfigError without). */
  response_format?: { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null } };
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  user?: string;
  /** Extension: a weighted stack of adapters (instead of `model`). */
  adapters?: Array<{ name: string; weight?: number }>;
  /** Extensions: samplers OpenAI does not have. */
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
}

/** OpenAI's ChatCompletion.Choice.Logprobs. */
export interface ChoiceLogprobs {
  content: TokenLogprob[] | null;
  refusal: null;
}

/** OpenAI's CompletionUsage, plus `extra`: time to first token and rates. */
export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  extra: { time_to_first_token_s: number; prefill_tokens_per_s: number; decode_tokens_per_s: number };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: Array<{
    index: number;
    message: { role: 'assistant'; content: string; refusal: null };
    /** With logprobs: true. */
    logprobs: ChoiceLogprobs | null;
    finish_reason: 'stop' | 'length';
  }>;
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: Array<{
    index: number;
    delta: { role?: 'assistant'; content?: string };
    /** With logprobs: true, those of the tokens since the previous chunk. */
    logprobs?: ChoiceLogprobs | null;
    finish_reason: 'stop' | 'length' | null;
  }>;
  /** With stream_options.include_usage: null, then on the last chunk (no choices) the usage. */
  usage?: CompletionUsage | null;
}
