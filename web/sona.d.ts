// Types of sona.js. Result objects keep the Python engine's snake_case keys.

/** A vector argument: a Float32Array, or any array of numbers (converted to float32). */
export type VectorLike = Float32Array | ArrayLike<number>;

/** Binary state from `saveState()`. */
export type StateBytes = Uint8Array | ArrayBuffer | ArrayBufferView;

export declare const MessageType: Readonly<{
  INIT: "init";
  CREATE_ENGINE: "create-engine";
  CREATE_ROUTER: "create-router";
  CALL: "call";
  RELEASE: "release";
  DEBUG_MEMORY: "debug-memory";
  /** Run Python source in a named namespace; see python-runner.js and demo/python.js. */
  RUN_PYTHON: "run-python";
  PROGRESS: "progress";
  RESULT: "result";
  ERROR: "error";
}>;

export type LoadPhaseName = "pyodide" | "numpy" | "sona-web" | "ready";

export declare const LoadPhase: Readonly<{
  PYODIDE: "pyodide";
  NUMPY: "numpy";
  SONA_WEB: "sona-web";
  READY: "ready";
}>;

export declare const LOAD_PHASES: readonly LoadPhaseName[];

/** Progress of loading: `loaded` of `total` steps are done when `phase` starts. */
export interface LoadProgress {
  phase: LoadPhaseName;
  loaded: number;
  total: number;
}

/** Base class of every error the bridge rejects with. */
export declare class SonaError extends Error {}

/** An exception raised by the Python engine. */
export declare class PythonError extends SonaError {
  /** Python exception class name, e.g. "ValueError". */
  readonly pythonType: string;
  /** Formatted Python traceback. */
  readonly pythonStack: string;
}
export declare class PythonValueError extends PythonError {}
export declare class PythonTypeError extends PythonError {}
export declare class PythonKeyError extends PythonError {}

/** Pyodide, a wheel or the worker script could not be loaded. */
export declare class LoadError extends SonaError {
  /** URL (or file URL) of the file that failed. */
  readonly url: string;
}

/** The runtime was terminated or its worker crashed while a call was pending. */
export declare class WorkerClosedError extends SonaError {}

export interface RuntimeOptions {
  /**
   * true: run Pyodide in a module Web Worker (the browser default).
   * false: run it in the calling thread (the only mode in Node).
   */
  worker?: boolean | "auto";
  /** Folder with pyodide.mjs, the wheels and pyodide-lock.json; default "./pyodide/" beside sona.js. In Node a path or file: URL. */
  indexURL?: string;
  /**
   * Packages to load after the core, in order: names from indexURL's
   * pyodide-lock.json, or URLs (in Node, paths) of wheels. Default
   * ["numpy", "sona-web"]. A page that loads Pyodide and numpy from a CDN
   * lists its own sona-web wheel by URL, because the CDN's lock file lacks it.
   */
  packages?: string[];
  /** Called as loading advances; a runtime that is already loaded reports "ready" at once. */
  onProgress?: (progress: LoadProgress) => void;
  /** Count live PyProxies for `debugMemory()`; slows every call. */
  debug?: boolean;
  /** Reuse this runtime instead of loading one. */
  runtime?: SonaRuntime;
}

/** SonaConfig fields, in camelCase or snake_case, plus a preset name. */
export interface SonaConfigOptions {
  preset?: "default" | "max_throughput" | "max_quality" | "edge_deployment" | "batch_processing";
  hiddenDim?: number;
  embeddingDim?: number;
  microLoraRank?: 1 | 2;
  microLoraAlpha?: number;
  microLoraLr?: number;
  headLr?: number;
  baseLoraRank?: number;
  baseLoraAlpha?: number;
  baseLoraLayers?: number;
  baseLoraLr?: number;
  ewcLambda?: number;
  ewcFisherAlpha?: number;
  ewcBoundaryThreshold?: number;
  ewcBoundaryPatience?: number;
  patternClusters?: number;
  patternDecay?: number;
  qualityThreshold?: number;
  trajectoryCapacity?: number;
  maxActiveTrajectories?: number;
  maxStepsPerTrajectory?: number;
  microBatchSize?: number;
  replayBatchSize?: number;
  backgroundIntervalMs?: number;
  enableSimd?: boolean;
  seed?: number;
  [snakeCaseField: string]: unknown;
}

/** The engine's settings as SonaConfig.to_dict() returns them. */
export interface SonaConfigDict {
  hidden_dim: number;
  embedding_dim: number;
  [field: string]: number | boolean;
}

export interface RouteStats {
  count: number;
  mean_quality: number;
}

export interface Pattern {
  id: number;
  centroid: Float32Array;
  cluster_size: number;
  total_weight: number;
  avg_quality: number;
  created_at: number;
  last_accessed: number;
  access_count: number;
  pattern_type: string;
  route_stats: Record<string, RouteStats>;
  similarity: number;
}

export interface RouteDecision {
  model_index: number;
  model: string;
  scores: number[];
  estimates: number[];
  uncertainty: number[];
  explored: boolean;
  /** Probability of choosing this model under the router's policy. */
  probability: number;
  patterns: Pattern[];
}

/** Summary of one background learning cycle. */
export type LearnSummary = Record<string, number>;

export interface DebugMemory {
  /** Size of the Wasm heap in bytes. */
  heapBytes: number;
  /** JavaScript objects referenced from Python. */
  hiwireRefs: number | null;
  /** Live PyProxies; null unless the runtime was loaded with `debug: true`. */
  liveProxies: number | null;
  /** Objects tracked by Python's garbage collector, after a collection. */
  pythonObjects: number;
  /** Engines and routers alive in the runtime. */
  handles: number;
}

/** One loaded Pyodide shared by engines and routers with the same options. */
export declare class SonaRuntime {
  static load(options?: RuntimeOptions): Promise<SonaRuntime>;
  readonly inWorker: boolean;
  readonly indexURL: string;
  readonly info: { pyodideVersion: string; indexURL: string } | null;
  debugMemory(): Promise<DebugMemory>;
  /** Stop the worker; pending and later calls reject with WorkerClosedError. */
  terminate(): void;
}

declare class PythonHandle {
  readonly runtime: SonaRuntime;
  readonly closed: boolean;
  debugMemory(): Promise<DebugMemory>;
  debug_memory(): Promise<DebugMemory>;
  /** Free the Python object; the runtime stays loaded. */
  close(): Promise<void>;
}

export declare class SonaEngine extends PythonHandle {
  static create(options?: RuntimeOptions & SonaConfigOptions): Promise<SonaEngine>;
  static fromState(state: StateBytes, options?: RuntimeOptions): Promise<SonaEngine>;

  config: SonaConfigDict;
  readonly hiddenDim: number;
  readonly embeddingDim: number;

  /** Start a trajectory for a query embedding of embeddingDim values; resolves to its id. */
  beginTrajectory(queryEmbedding: VectorLike): Promise<number>;
  addTrajectoryStep(trajectoryId: number, activations: VectorLike, attention: VectorLike, reward: number): Promise<void>;
  addStep(trajectoryId: number, activations: VectorLike, attention: VectorLike, reward: number): Promise<void>;
  setTrajectoryRoute(trajectoryId: number, route: string): Promise<void>;
  addTrajectoryContext(trajectoryId: number, context: string): Promise<void>;
  /** End a trajectory with its quality in [0, 1] and learn from it. */
  endTrajectory(trajectoryId: number, quality: number): Promise<void>;

  /** Adapt one vector of hiddenDim values. */
  applyMicroLora(x: VectorLike): Promise<Float32Array>;
  /** Adapt n vectors in one message; resolves to n*hiddenDim values, row by row. */
  applyMicroLoraBatch(data: VectorLike, n: number): Promise<Float32Array>;
  applyMicroLoraBatch(vectors: VectorLike[]): Promise<Float32Array>;
  applyBaseLora(layer: number, x: VectorLike): Promise<Float32Array>;
  applyBaseLoraBatch(layer: number, data: VectorLike, n: number): Promise<Float32Array>;
  applyBaseLoraBatch(layer: number, vectors: VectorLike[]): Promise<Float32Array>;
  transform(queryEmbedding: VectorLike): Promise<Float32Array>;
  predictQuality(queryEmbedding: VectorLike): Promise<Record<string, number>>;
  routes(): Promise<string[]>;

  /** Run a background cycle if background_interval_ms has passed. */
  tick(): Promise<LearnSummary | null>;
  forceLearn(): Promise<LearnSummary>;
  /** Apply waiting instant updates; resolves to how many trajectories they covered. */
  flush(): Promise<number>;
  findPatterns(queryEmbedding: VectorLike, k?: number): Promise<Pattern[]>;

  /** Statistics as a JSON string. */
  getStats(): Promise<string>;
  stats(): Promise<Record<string, number | boolean>>;
  setEnabled(enabled: boolean): Promise<void>;
  isEnabled(): Promise<boolean>;

  saveState(): Promise<Uint8Array>;
  /** Replace this engine's state with bytes from saveState(). */
  loadState(state: StateBytes): Promise<void>;

  /** Embed text with the hashed embedder at embeddingDim. */
  embed(text: string): Promise<Float32Array>;
  embed(texts: string[]): Promise<Float32Array[]>;

  begin_trajectory: SonaEngine["beginTrajectory"];
  add_trajectory_step: SonaEngine["addTrajectoryStep"];
  add_step: SonaEngine["addStep"];
  set_trajectory_route: SonaEngine["setTrajectoryRoute"];
  add_trajectory_context: SonaEngine["addTrajectoryContext"];
  end_trajectory: SonaEngine["endTrajectory"];
  apply_micro_lora: SonaEngine["applyMicroLora"];
  apply_micro_lora_batch: SonaEngine["applyMicroLoraBatch"];
  apply_base_lora: SonaEngine["applyBaseLora"];
  apply_base_lora_batch: SonaEngine["applyBaseLoraBatch"];
  force_learn: SonaEngine["forceLearn"];
  find_patterns: SonaEngine["findPatterns"];
  predict_quality: SonaEngine["predictQuality"];
  get_stats: SonaEngine["getStats"];
  set_enabled: SonaEngine["setEnabled"];
  is_enabled: SonaEngine["isEnabled"];
  save_state: SonaEngine["saveState"];
  load_state: SonaEngine["loadState"];
}

export interface ModelSpec {
  name: string;
  cost: number;
}

export interface RouterOptions extends RuntimeOptions, SonaConfigOptions {
  /** At least two models with distinct names. */
  models: ModelSpec[];
  costWeight?: number;
  exploration?: number;
  nPatterns?: number;
  learnEvery?: number;
  /** Prior strength of the per-model ridge regressions, in observations (default 1). */
  ridge?: number;
  /** `false` replaces the ridge regressions by the engine's value heads (for ablations). */
  linearPrior?: boolean;
}

export declare class AdaptiveRouter extends PythonHandle {
  static create(options: RouterOptions): Promise<AdaptiveRouter>;
  static fromState(state: StateBytes, options?: RuntimeOptions): Promise<AdaptiveRouter>;

  route(queryEmbedding: VectorLike): Promise<RouteDecision>;
  /** `model` is a name or an index into `models`. */
  recordOutcome(queryEmbedding: VectorLike, model: string | number, quality: number, latencyMs?: number): Promise<void>;
  tick(): Promise<LearnSummary | null>;
  decisions(): Promise<Array<Record<string, unknown>>>;
  stats(): Promise<Record<string, unknown>>;
  saveState(): Promise<Uint8Array>;
  loadState(state: StateBytes): Promise<void>;

  record_outcome: AdaptiveRouter["recordOutcome"];
  save_state: AdaptiveRouter["saveState"];
  load_state: AdaptiveRouter["loadState"];
}
