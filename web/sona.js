// sona-web in JavaScript: SonaEngine and AdaptiveRouter backed by the Python
// engine running in Pyodide.
//
// By default Pyodide runs in a module Web Worker, so Python work does not block
// the page. `worker: false` runs it in the calling thread, which is also the
// mode used in Node. Every method returns a promise. Vectors go in as
// Float32Array (plain arrays are converted) and come out as Float32Array.
// Result objects keep the Python engine's snake_case keys.

import {
  LOAD_PHASES,
  LoadError,
  LoadPhase,
  MessageType,
  PythonError,
  PythonKeyError,
  PythonTypeError,
  PythonValueError,
  SonaError,
  WorkerClosedError,
  deserializeError,
  serializeError,
} from "./protocol.js";

export {
  LOAD_PHASES,
  LoadError,
  LoadPhase,
  MessageType,
  PythonError,
  PythonKeyError,
  PythonTypeError,
  PythonValueError,
  SonaError,
  WorkerClosedError,
};

const IN_NODE = typeof process !== "undefined" && Boolean(process.versions?.node) && typeof window === "undefined";

// Options that configure the runtime; all other create() options are
// engine or router config fields.
const RUNTIME_OPTIONS = ["worker", "indexURL", "packages", "onProgress", "debug", "runtime"];

// ---------------------------------------------------------------- channels

/** Sends requests to a module Web Worker and matches replies by id. */
class WorkerChannel {
  constructor(workerURL) {
    this.workerURL = workerURL;
    this.worker = new Worker(workerURL, { type: "module" });
    this.pending = new Map();
    this.nextId = 1;
    this.closedError = null;
    this.worker.addEventListener("message", (event) => this.receive(event.data));
    this.worker.addEventListener("error", (event) => this.fail(event));
    this.worker.addEventListener("messageerror", () => {
      this.rejectAll(new WorkerClosedError("a message from the worker could not be deserialised"));
    });
  }

  request(message, transfer = [], onProgress = null) {
    if (this.closedError) {
      return Promise.reject(this.closedError);
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  receive(data) {
    const entry = this.pending.get(data.id);
    if (!entry) {
      return;
    }
    if (data.type === MessageType.PROGRESS) {
      entry.onProgress?.({ phase: data.phase, loaded: data.loaded, total: data.total });
      return;
    }
    this.pending.delete(data.id);
    if (data.type === MessageType.RESULT) {
      entry.resolve(data.value);
    } else {
      entry.reject(deserializeError(data.error));
    }
  }

  fail(event) {
    // The error event of a worker whose script failed to load carries no
    // status, so the message names the script URL to check.
    event.preventDefault?.();
    const detail = event.message ? `: ${event.message}` : "";
    const error = new LoadError(`worker script failed or crashed: ${this.workerURL}${detail}`, String(this.workerURL));
    this.closedError = error;
    this.rejectAll(error);
  }

  rejectAll(error) {
    for (const entry of this.pending.values()) {
      entry.reject(error);
    }
    this.pending.clear();
  }

  terminate() {
    this.worker.terminate();
    this.closedError = new WorkerClosedError("the sona-web runtime was terminated");
    this.rejectAll(this.closedError);
  }
}

/** Serves requests with a PyodideHost in the calling thread. */
class LocalChannel {
  constructor() {
    this.host = null;
    this.closedError = null;
  }

  async request(message, transfer = [], onProgress = null) {
    if (this.closedError) {
      throw this.closedError;
    }
    if (!this.host) {
      const { PyodideHost } = await import("./host.js");
      this.host ??= new PyodideHost();
    }
    try {
      return await this.host.handle(message, onProgress ?? (() => {}));
    } catch (error) {
      // The same classes as in worker mode, whatever the host threw.
      throw deserializeError(serializeError(error));
    }
  }

  terminate() {
    this.host?.close();
    this.closedError = new WorkerClosedError("the sona-web runtime was terminated");
  }
}

// ---------------------------------------------------------------- runtime

/** Resolve `indexURL` (default: pyodide/ beside this module) to an absolute URL ending in "/". */
async function resolveIndexURL(indexURL) {
  let url;
  if (IN_NODE) {
    const { pathToFileURL } = await import("node:url");
    const { resolve } = await import("node:path");
    const text = indexURL === undefined ? new URL("./pyodide/", import.meta.url).href : String(indexURL);
    url = /^[a-z][a-z0-9+.-]*:/i.test(text) ? text : pathToFileURL(resolve(text)).href;
  } else {
    const base = globalThis.location?.href ?? import.meta.url;
    url = new URL(indexURL ?? new URL("./pyodide/", import.meta.url).href, base).href;
  }
  return url.endsWith("/") ? url : `${url}/`;
}

/**
 * Resolve the `packages` option: names stay as they are, and wheel locations
 * (ending in ".whl") become absolute URLs, since the host may run in a worker
 * whose base URL differs from the page's.
 */
async function resolvePackages(packages) {
  if (packages === undefined) {
    return ["numpy", "sona-web"];
  }
  if (!Array.isArray(packages) || packages.length === 0 || !packages.every((entry) => typeof entry === "string" && entry)) {
    throw new TypeError(`packages must be a non-empty array of package names or wheel URLs, got ${JSON.stringify(packages)}`);
  }
  const resolved = [];
  for (const entry of packages) {
    if (!entry.endsWith(".whl")) {
      resolved.push(entry);
    } else if (IN_NODE && !/^[a-z][a-z0-9+.-]*:/i.test(entry)) {
      const { pathToFileURL } = await import("node:url");
      const { resolve } = await import("node:path");
      resolved.push(pathToFileURL(resolve(entry)).href);
    } else {
      resolved.push(new URL(entry, globalThis.location?.href ?? import.meta.url).href);
    }
  }
  return resolved;
}

function chooseWorkerMode(worker) {
  if (worker === undefined || worker === "auto") {
    return typeof Worker !== "undefined" && !IN_NODE;
  }
  if (worker && (typeof Worker === "undefined" || IN_NODE)) {
    throw new SonaError(
      "worker: true needs module Web Workers, which this environment lacks; in Node pass worker: false",
    );
  }
  return Boolean(worker);
}

const sharedRuntimes = new Map();

/**
 * One loaded Pyodide (in a worker or in this thread) that any number of
 * engines and routers share. `SonaRuntime.load` returns the same runtime for
 * the same `{indexURL, worker, debug, packages}` until it is terminated.
 */
export class SonaRuntime {
  constructor(channel, options) {
    this.channel = channel;
    this.key = options.key;
    this.inWorker = options.worker;
    this.indexURL = options.indexURL;
    this.debug = options.debug;
    this.packages = options.packages;
    this.listeners = new Set();
    this.lastProgress = null;
    this.info = null;
    this.ready = null;
  }

  static async load(options = {}) {
    const worker = chooseWorkerMode(options.worker);
    const indexURL = await resolveIndexURL(options.indexURL);
    const debug = Boolean(options.debug);
    const packages = await resolvePackages(options.packages);
    const key = JSON.stringify([worker, indexURL, debug, packages]);

    let runtime = sharedRuntimes.get(key);
    if (!runtime) {
      const channel = worker ? new WorkerChannel(new URL("./worker.js", import.meta.url)) : new LocalChannel();
      runtime = new SonaRuntime(channel, { key, worker, indexURL, debug, packages });
      sharedRuntimes.set(key, runtime);
      runtime.ready = runtime.start();
    }

    runtime.subscribe(options.onProgress);
    try {
      await runtime.ready;
    } finally {
      runtime.listeners.delete(options.onProgress);
    }
    return runtime;
  }

  async start() {
    const onProgress = (progress) => {
      this.lastProgress = progress;
      for (const listener of this.listeners) {
        listener(progress);
      }
    };
    try {
      this.info = await this.channel.request(
        { type: MessageType.INIT, indexURL: this.indexURL, debug: this.debug, packages: this.packages },
        [],
        onProgress,
      );
    } catch (error) {
      // A failed load is not cached, so a later create() can retry.
      sharedRuntimes.delete(this.key);
      this.channel.terminate();
      throw error;
    }
  }

  subscribe(listener) {
    if (typeof listener !== "function") {
      return;
    }
    this.listeners.add(listener);
    if (this.lastProgress) {
      listener(this.lastProgress);
    }
  }

  request(message, transfer = []) {
    return this.channel.request(message, this.inWorker ? transfer : []);
  }

  /** Report the Wasm heap size, live PyProxies (debug only) and Python object count. */
  debugMemory() {
    return this.request({ type: MessageType.DEBUG_MEMORY });
  }

  /** Stop the worker (or drop the in-thread host); pending calls reject with WorkerClosedError. */
  terminate() {
    sharedRuntimes.delete(this.key);
    this.channel.terminate();
  }
}

// ---------------------------------------------------------------- conversion

/**
 * Return `value` as a Float32Array plus the buffers that may be moved to the
 * worker. A caller's own Float32Array is copied by postMessage (never
 * detached); a new array made here is moved.
 */
function float32(value, name) {
  if (value instanceof Float32Array) {
    const whole = value.byteOffset === 0 && value.byteLength === value.buffer.byteLength;
    // A view into a larger buffer is sliced, because postMessage would
    // otherwise clone the whole underlying buffer.
    return whole ? { array: value, transfer: [] } : owned(value.slice());
  }
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    return owned(Float32Array.from(value));
  }
  throw new TypeError(`${name} must be a Float32Array or an array of numbers, got ${describe(value)}`);
}

function owned(array) {
  return { array, transfer: [array.buffer] };
}

function describe(value) {
  if (value === null) {
    return "null";
  }
  return Array.isArray(value) ? "Array" : (value?.constructor?.name ?? typeof value);
}

/** Flatten a batch: a Float32Array of n*d values with `count`, or an array of vectors. */
function float32Batch(data, count, name) {
  if (Array.isArray(data) && data.length > 0 && (Array.isArray(data[0]) || ArrayBuffer.isView(data[0]))) {
    if (count !== undefined && count !== data.length) {
      throw new RangeError(`n=${count} does not match the ${data.length} vectors passed in ${name}`);
    }
    const dim = data[0].length;
    const flat = new Float32Array(data.length * dim);
    data.forEach((row, index) => {
      if (row.length !== dim) {
        throw new RangeError(`${name}[${index}] has ${row.length} values, expected ${dim} like ${name}[0]`);
      }
      flat.set(row, index * dim);
    });
    return { ...owned(flat), count: data.length };
  }
  if (count === undefined) {
    throw new TypeError(`n (the number of vectors) is required when ${name} is a flat array`);
  }
  return { ...float32(data, name), count };
}

/** Return state bytes as a Uint8Array that covers its whole buffer. */
function binary(value, name) {
  if (value instanceof ArrayBuffer) {
    return new Uint8Array(value);
  }
  if (!ArrayBuffer.isView(value)) {
    throw new TypeError(`${name} must be a Uint8Array or an ArrayBuffer, got ${describe(value)}`);
  }
  const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  // As for vectors, a view into a larger buffer is copied so that
  // postMessage does not clone the whole buffer.
  return bytes.byteLength === value.buffer.byteLength ? bytes : bytes.slice();
}

/** Split runtime options from config fields. */
function splitOptions(options) {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`options must be an object, got ${describe(options)}`);
  }
  const runtimeOptions = {};
  const config = {};
  for (const [key, value] of Object.entries(options)) {
    if (RUNTIME_OPTIONS.includes(key)) {
      runtimeOptions[key] = value;
    } else if (value !== undefined) {
      config[key] = value;
    }
  }
  return { runtimeOptions, config };
}

async function runtimeFor(runtimeOptions) {
  return runtimeOptions.runtime instanceof SonaRuntime ? runtimeOptions.runtime : SonaRuntime.load(runtimeOptions);
}

// ---------------------------------------------------------------- handles

/** Shared plumbing of SonaEngine and AdaptiveRouter: one Python object behind a handle. */
class PythonHandle {
  constructor(runtime, handle) {
    this.runtime = runtime;
    this.handle = handle;
    this.closed = false;
  }

  call(method, args = [], transfer = []) {
    if (this.closed) {
      return Promise.reject(new SonaError(`${this.constructor.name} is closed`));
    }
    return this.runtime.request({ type: MessageType.CALL, handle: this.handle, method, args }, transfer);
  }

  /** Call `method` with vector arguments at the given positions. */
  callWithVectors(method, args, vectorPositions) {
    const transfer = [];
    let converted;
    try {
      converted = args.map((value, index) => {
        if (!vectorPositions.includes(index)) {
          return value;
        }
        const { array, transfer: buffers } = float32(value, VECTOR_NAMES[method]?.[index] ?? `argument ${index}`);
        transfer.push(...buffers);
        return array;
      });
    } catch (error) {
      // Every method reports bad input through its promise, never by throwing.
      return Promise.reject(error);
    }
    return this.call(method, trimUndefined(converted), transfer);
  }

  /** Run a background learning cycle if one is due; resolves to its summary or null. */
  tick() {
    return this.call("tick");
  }

  /** Resolve to the object's statistics as a plain object. */
  stats() {
    return this.call("stats");
  }

  /** Resolve to the versioned, checksummed state as a Uint8Array. */
  saveState() {
    return this.call("save_state");
  }

  /** Report memory figures of the runtime, for leak tests. */
  debugMemory() {
    return this.runtime.debugMemory();
  }

  /** Free the Python object; later calls reject. The runtime stays loaded. */
  async close() {
    if (this.closed) {
      return;
    }
    this.closed = true;
    await this.runtime.request({ type: MessageType.RELEASE, handle: this.handle });
  }
}

// Parameter names used in page-side error messages, matching the Python API.
const VECTOR_NAMES = {
  begin_trajectory: ["query_embedding"],
  add_trajectory_step: [null, "activations", "attention"],
  apply_micro_lora: ["x"],
  apply_base_lora: [null, "x"],
  find_patterns: ["query_embedding"],
  transform: ["query_embedding"],
  predict_quality: ["query_embedding"],
  route: ["query_embedding"],
  record_outcome: ["query_embedding"],
};

function trimUndefined(args) {
  const result = [...args];
  while (result.length && result[result.length - 1] === undefined) {
    result.pop();
  }
  return result;
}

function addSnakeCaseAliases(cls, names) {
  for (const [camel, snake] of names) {
    Object.defineProperty(cls.prototype, snake, {
      value: cls.prototype[camel],
      writable: true,
      configurable: true,
    });
  }
}

// ---------------------------------------------------------------- engine

/** The SONA engine: trajectories in, adapted vectors and learned patterns out. */
export class SonaEngine extends PythonHandle {
  constructor(runtime, handle, config) {
    super(runtime, handle);
    this.config = config;
  }

  /**
   * Load the runtime (once per page) and create an engine. Config fields may
   * be camelCase or snake_case; `preset` names a SonaConfig preset.
   */
  static async create(options = {}) {
    const { runtimeOptions, config } = splitOptions(options);
    const runtime = await runtimeFor(runtimeOptions);
    const created = await runtime.request({ type: MessageType.CREATE_ENGINE, options: config });
    return new SonaEngine(runtime, created.handle, created.config);
  }

  /** Create an engine from bytes returned by `saveState()`. */
  static async fromState(state, options = {}) {
    const { runtimeOptions } = splitOptions(options);
    const runtime = await runtimeFor(runtimeOptions);
    const created = await runtime.request({ type: MessageType.CREATE_ENGINE, state: binary(state, "state") });
    return new SonaEngine(runtime, created.handle, created.config);
  }

  get hiddenDim() {
    return this.config.hidden_dim;
  }

  get embeddingDim() {
    return this.config.embedding_dim;
  }

  beginTrajectory(queryEmbedding) {
    return this.callWithVectors("begin_trajectory", [queryEmbedding], [0]);
  }

  addTrajectoryStep(trajectoryId, activations, attention, reward) {
    return this.callWithVectors("add_trajectory_step", [trajectoryId, activations, attention, reward], [1, 2]);
  }

  addStep(trajectoryId, activations, attention, reward) {
    return this.addTrajectoryStep(trajectoryId, activations, attention, reward);
  }

  setTrajectoryRoute(trajectoryId, route) {
    return this.call("set_trajectory_route", [trajectoryId, route]);
  }

  addTrajectoryContext(trajectoryId, context) {
    return this.call("add_trajectory_context", [trajectoryId, context]);
  }

  endTrajectory(trajectoryId, quality) {
    return this.call("end_trajectory", [trajectoryId, quality]);
  }

  /** Adapt one vector of hiddenDim values; resolves to a new Float32Array. */
  applyMicroLora(x) {
    return this.callWithVectors("apply_micro_lora", [x], [0]);
  }

  /**
   * Adapt n vectors in one message: `data` is a Float32Array of n*hiddenDim
   * values with `n`, or an array of vectors. Resolves to a Float32Array of
   * n*hiddenDim values in the same row order.
   */
  async applyMicroLoraBatch(data, n) {
    const batch = float32Batch(data, n, "data");
    return this.call("apply_micro_lora_batch", [batch.array, batch.count], batch.transfer);
  }

  applyBaseLora(layer, x) {
    return this.callWithVectors("apply_base_lora", [layer, x], [1]);
  }

  async applyBaseLoraBatch(layer, data, n) {
    const batch = float32Batch(data, n, "data");
    return this.call("apply_base_lora_batch", [layer, batch.array, batch.count], batch.transfer);
  }

  forceLearn() {
    return this.call("force_learn");
  }

  flush() {
    return this.call("flush");
  }

  /**
   * Resolve to up to `k` learned patterns nearest to a query embedding,
   * most similar first; each centroid is a Float32Array.
   */
  findPatterns(queryEmbedding, k = 5) {
    return this.callWithVectors("find_patterns", [queryEmbedding, k], [0]);
  }

  /** Resolve to the full adapted representation (hiddenDim values) of a query embedding. */
  transform(queryEmbedding) {
    return this.callWithVectors("transform", [queryEmbedding], [0]);
  }

  /** Resolve to `{route: estimated quality}` from the value heads, for one query embedding. */
  predictQuality(queryEmbedding) {
    return this.callWithVectors("predict_quality", [queryEmbedding], [0]);
  }

  /** Resolve to the route names the engine has seen, in registration order. */
  routes() {
    return this.call("routes");
  }

  /** Resolves to the engine's statistics as a JSON string. */
  getStats() {
    return this.call("get_stats");
  }

  setEnabled(enabled) {
    return this.call("set_enabled", [enabled]);
  }

  isEnabled() {
    return this.call("is_enabled");
  }

  /** Replace this engine's state with bytes from `saveState()`. */
  async loadState(state) {
    const bytes = binary(state, "state");
    this.config = await this.call("load_state", [bytes]);
  }

  /**
   * Embed text with the hashed embedder at embeddingDim. A string resolves to
   * one Float32Array, an array of strings to an array of Float32Array.
   */
  async embed(texts) {
    const single = typeof texts === "string";
    const flat = await this.call("embed", [single ? [texts] : texts]);
    if (single) {
      return flat;
    }
    const dim = this.embeddingDim;
    return Array.from({ length: flat.length / dim }, (_, row) => flat.slice(row * dim, (row + 1) * dim));
  }
}

addSnakeCaseAliases(SonaEngine, [
  ["beginTrajectory", "begin_trajectory"],
  ["addTrajectoryStep", "add_trajectory_step"],
  ["addStep", "add_step"],
  ["setTrajectoryRoute", "set_trajectory_route"],
  ["addTrajectoryContext", "add_trajectory_context"],
  ["endTrajectory", "end_trajectory"],
  ["applyMicroLora", "apply_micro_lora"],
  ["applyMicroLoraBatch", "apply_micro_lora_batch"],
  ["applyBaseLora", "apply_base_lora"],
  ["applyBaseLoraBatch", "apply_base_lora_batch"],
  ["forceLearn", "force_learn"],
  ["findPatterns", "find_patterns"],
  ["predictQuality", "predict_quality"],
  ["getStats", "get_stats"],
  ["setEnabled", "set_enabled"],
  ["isEnabled", "is_enabled"],
  ["saveState", "save_state"],
  ["loadState", "load_state"],
  ["debugMemory", "debug_memory"],
]);

// ---------------------------------------------------------------- router

/** Picks the model most likely to satisfy the user at the lowest cost, and learns from outcomes. */
export class AdaptiveRouter extends PythonHandle {
  /**
   * Load the runtime and create a router over `models`, a list of
   * `{name, cost}`. `seed` and SonaConfig fields are optional.
   */
  static async create(options = {}) {
    const { runtimeOptions, config } = splitOptions(options);
    const { models, ...rest } = config;
    if (!Array.isArray(models)) {
      throw new TypeError(`models must be an array of {name, cost}, got ${describe(models)}`);
    }
    const runtime = await runtimeFor(runtimeOptions);
    const created = await runtime.request({ type: MessageType.CREATE_ROUTER, models, options: rest });
    return new AdaptiveRouter(runtime, created.handle);
  }

  /** Create a router from bytes returned by `saveState()`. */
  static async fromState(state, options = {}) {
    const { runtimeOptions } = splitOptions(options);
    const runtime = await runtimeFor(runtimeOptions);
    const created = await runtime.request({ type: MessageType.CREATE_ROUTER, models: null, state: binary(state, "state") });
    return new AdaptiveRouter(runtime, created.handle);
  }

  /**
   * Resolve to the RouteDecision as an object: model_index, model, scores,
   * estimates, uncertainty, explored, probability and patterns.
   */
  route(queryEmbedding) {
    return this.callWithVectors("route", [queryEmbedding], [0]);
  }

  /** Record the quality in [0, 1] that `model` (index or name) achieved for a query embedding. */
  recordOutcome(queryEmbedding, model, quality, latencyMs = 0) {
    return this.callWithVectors("record_outcome", [queryEmbedding, model, quality, latencyMs], [0]);
  }

  /** Resolve to the logged decisions (model index, probability, scores), oldest first. */
  decisions() {
    return this.call("decisions");
  }

  async loadState(state) {
    await this.call("load_state", [binary(state, "state")]);
  }
}

addSnakeCaseAliases(AdaptiveRouter, [
  ["recordOutcome", "record_outcome"],
  ["saveState", "save_state"],
  ["loadState", "load_state"],
  ["debugMemory", "debug_memory"],
]);

