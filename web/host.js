// The Pyodide side of the bridge: loads Pyodide, numpy and sona-web, then
// serves protocol requests by calling sona_web._bridge. It runs inside the
// module worker (worker.js), or in the calling thread when the page or Node
// requests in-thread mode.

import { LoadError, LoadPhase, MessageType, deserializeError } from "./protocol.js";
import { servePythonRun } from "./python-runner.js";

const IN_NODE = typeof process !== "undefined" && Boolean(process.versions?.node);

// Files that loadPyodide reads from indexURL before any package.
const CORE_FILES = ["pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"];

// Packages loaded one at a time, so each gets its own progress phase. An
// entry is a name from pyodide-lock.json or the URL (in Node, the path) of a
// wheel, for a page that takes Pyodide and numpy from a CDN whose lock file
// does not list sona-web.
export const DEFAULT_PACKAGES = Object.freeze(["numpy", "sona-web"]);

const TO_JS_OPTIONS = { dict_converter: Object.fromEntries, create_pyproxies: false };

/** Turn a Node path or a URL string into a URL whose path ends with "/". */
async function directoryURL(indexURL) {
  const withSlash = indexURL.endsWith("/") ? indexURL : `${indexURL}/`;
  if (IN_NODE && !/^[a-z][a-z0-9+.-]*:\/\//i.test(withSlash)) {
    const { pathToFileURL } = await import("node:url");
    return new URL(pathToFileURL(withSlash).href);
  }
  return new URL(withSlash);
}

/** Throw a LoadError naming the first core file that is missing. */
async function checkCoreFiles(baseURL) {
  for (const name of CORE_FILES) {
    const url = new URL(name, baseURL);
    if (url.protocol === "file:") {
      const { access } = await import("node:fs/promises");
      const path = await filePath(url);
      try {
        await access(path);
      } catch (error) {
        throw new LoadError(`Pyodide file not found: ${path} (${error.code})`, url.href);
      }
      continue;
    }
    let response;
    try {
      response = await fetch(url, { method: "HEAD" });
    } catch (error) {
      throw new LoadError(`Pyodide file could not be fetched: ${url.href} (${error.message})`, url.href);
    }
    // Only a definite "not there" fails here: some static servers reject HEAD
    // (405, 501), and loadPyodide then reports its own error for that file.
    if (response.status === 404 || response.status === 410) {
      throw new LoadError(`Pyodide file not found: ${url.href} (HTTP ${response.status})`, url.href);
    }
  }
}

function isWheelLocation(entry) {
  return entry.endsWith(".whl");
}

/** Return the URL a package is fetched from, for error messages. */
function packageURL(pyodide, baseURL, entry) {
  if (isWheelLocation(entry)) {
    return entry;
  }
  const lockEntry = pyodide._api?.lockfile_packages?.[entry];
  return new URL(lockEntry ? lockEntry.file_name : entry, baseURL).href;
}

/** Return the name under which Pyodide records a loaded package entry. */
function loadedName(entry) {
  if (!isWheelLocation(entry)) {
    return entry;
  }
  // A wheel's file name starts with its distribution name, in which "-"
  // became "_" (PEP 427); Pyodide records a wheel loaded by URL under it.
  return entry.split("/").pop().split("-")[0];
}

/** Return the path of a file: URL, for Node APIs that take paths. */
async function filePath(url) {
  const { fileURLToPath } = await import("node:url");
  return fileURLToPath(url);
}

/** Return the form of `url` that loadPyodide expects: a path in Node, else the URL. */
async function pyodideIndex(url) {
  if (url.protocol !== "file:") {
    return url.href;
  }
  const path = await filePath(url);
  return path.endsWith("/") ? path : `${path}/`;
}

/**
 * Replace undefined with null in arrays and plain objects, in place. toJs
 * turns Python None into undefined, which JSON.stringify would drop from an
 * object; null keeps "no value" visible, as None is in Python.
 */
function noneToNull(value) {
  if (value === undefined) {
    return null;
  }
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      value[index] = noneToNull(value[index]);
    }
  } else if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value)) {
    for (const key of Object.keys(value)) {
      value[key] = noneToNull(value[key]);
    }
  }
  return value;
}

/** Call a Python function of sona_web._bridge and unwrap its envelope. */
function callBridge(func, ...args) {
  const envelope = func(...args);
  let result;
  try {
    result = envelope.toJs(TO_JS_OPTIONS);
  } finally {
    envelope.destroy();
  }
  if (!result.ok) {
    throw deserializeError(result.error);
  }
  return noneToNull(result.value);
}

export class PyodideHost {
  constructor() {
    this.pyodide = null;
    this.baseURL = null;
    this.debug = false;
    this.module = null;
    this.functions = null;
  }

  /** Load Pyodide and the packages; `onProgress` gets `{phase, loaded, total}`. */
  async init({ indexURL, debug = false, packages = DEFAULT_PACKAGES }, onProgress = () => {}) {
    if (this.pyodide) {
      return this.describe();
    }
    if (typeof indexURL !== "string" || indexURL === "") {
      throw new LoadError(`indexURL must be a non-empty string, got ${String(indexURL)}`);
    }
    this.baseURL = await directoryURL(indexURL);
    this.debug = Boolean(debug);

    const total = packages.length + 1;
    onProgress({ phase: LoadPhase.PYODIDE, loaded: 0, total });
    const pyodide = await this.loadCore();

    for (const [index, entry] of packages.entries()) {
      const phase = entry === "numpy" ? LoadPhase.NUMPY : LoadPhase.SONA_WEB;
      onProgress({ phase, loaded: index + 1, total });
      await this.loadPackage(pyodide, entry);
    }

    this.bindBridge(pyodide);
    this.pyodide = pyodide;
    onProgress({ phase: LoadPhase.READY, loaded: total, total });
    return this.describe();
  }

  async loadCore() {
    await checkCoreFiles(this.baseURL);

    const moduleURL = new URL("pyodide.mjs", this.baseURL);
    let loadPyodide;
    try {
      ({ loadPyodide } = await import(moduleURL.href));
    } catch (error) {
      throw new LoadError(`Pyodide module could not be loaded: ${moduleURL.href} (${error.message})`, moduleURL.href);
    }

    let pyodide;
    try {
      pyodide = await loadPyodide({
        indexURL: await pyodideIndex(this.baseURL),
        stdout: () => {},
        stderr: (line) => console.warn(line),
      });
    } catch (error) {
      throw new LoadError(`Pyodide failed to start from ${this.baseURL.href}: ${error.message}`, this.baseURL.href);
    }

    // NOTE: in Node, Pyodide 0.27.7 retries a package that is missing
    // locally from its public CDN. Pointing the CDN at the local folder
    // keeps every read local, so a missing wheel fails with its path.
    pyodide._api?.setCdnUrl?.(await pyodideIndex(this.baseURL));
    if (this.debug) {
      pyodide._module.enable_pyproxy_allocation_tracing();
    }
    return pyodide;
  }

  async loadPackage(pyodide, entry) {
    const errors = [];
    const location = entry.startsWith("file:") ? await filePath(new URL(entry)) : entry;
    await pyodide.loadPackage(location, {
      messageCallback: () => {},
      errorCallback: (message) => errors.push(message),
      checkIntegrity: true,
    });
    if (!(loadedName(entry) in pyodide.loadedPackages)) {
      const url = packageURL(pyodide, this.baseURL, entry);
      const detail = errors.join(" ").trim() || "no error message";
      throw new LoadError(`package ${loadedName(entry)} could not be loaded from ${url}: ${detail}`, url);
    }
  }

  bindBridge(pyodide) {
    // The function proxies are borrowed from the module proxy, so the module
    // proxy stays alive until close() and destroys them with it.
    this.module = pyodide.pyimport("sona_web._bridge");
    this.functions = {
      createEngine: this.module.create_engine,
      createRouter: this.module.create_router,
      invoke: this.module.invoke,
      release: this.module.release,
      memoryInfo: this.module.memory_info,
    };
  }

  describe() {
    return { pyodideVersion: this.pyodide.version, indexURL: this.baseURL.href };
  }

  /** Serve one request; returns its result value (typed arrays own their buffers). */
  async handle(message, onProgress) {
    if (message.type === MessageType.INIT) {
      return this.init(message, onProgress);
    }
    if (!this.functions) {
      throw new LoadError("the Pyodide host is not initialised: send INIT first");
    }
    const fn = this.functions;
    switch (message.type) {
      case MessageType.CALL:
        return callBridge(fn.invoke, message.handle, message.method, ...(message.args ?? []));
      case MessageType.CREATE_ENGINE:
        return callBridge(fn.createEngine, message.options ?? null, message.state ?? null);
      case MessageType.CREATE_ROUTER:
        return callBridge(fn.createRouter, message.models, message.options ?? null, message.state ?? null);
      case MessageType.RELEASE:
        return callBridge(fn.release, message.handle);
      case MessageType.RUN_PYTHON:
        return servePythonRun(this.pyodide, message, deserializeError);
      case MessageType.DEBUG_MEMORY:
        return this.debugMemory();
      default:
        throw new TypeError(`unknown message type ${String(message.type)}`);
    }
  }

  debugMemory() {
    const module = this.pyodide._module;
    const python = callBridge(this.functions.memoryInfo);
    return {
      heapBytes: module.HEAPU8.length,
      hiwireRefs: typeof module._hiwire_num_refs === "function" ? module._hiwire_num_refs() : null,
      // Counted only when the runtime was created with `debug: true`,
      // because tracing records a stack trace per proxy.
      liveProxies: this.debug ? module.pyproxy_alloc_map.size : null,
      ...python,
    };
  }

  /** Destroy the long-lived proxies; the host cannot serve requests after. */
  close() {
    this.module?.destroy();
    this.module = null;
    this.functions = null;
  }
}
