// Messages between the page (sona.js) and the Pyodide host (host.js), which
// runs in a module Web Worker or in the page's own thread.
//
// Every request carries a numeric `id`. The host replies to each request with
// exactly one RESULT or ERROR message with the same id, and may send any
// number of PROGRESS messages with that id before it. Errors cross the
// boundary as plain objects `{name, message, pythonType, stack, url}`, since
// structured clone drops the prototype of an Error subclass and its extra
// fields, and are rebuilt into Error subclasses on the page side.

/** Message types. Requests go page -> host, the last three go host -> page. */
export const MessageType = Object.freeze({
  INIT: "init",
  CREATE_ENGINE: "create-engine",
  CREATE_ROUTER: "create-router",
  CALL: "call",
  RELEASE: "release",
  DEBUG_MEMORY: "debug-memory",
  // Run Python source in a named namespace (developer console, chat demo);
  // served by python-runner.js.
  RUN_PYTHON: "run-python",
  PROGRESS: "progress",
  RESULT: "result",
  ERROR: "error",
});

/** Load phases reported through `onProgress`, in order. */
export const LoadPhase = Object.freeze({
  PYODIDE: "pyodide",
  NUMPY: "numpy",
  SONA_WEB: "sona-web",
  READY: "ready",
});

export const LOAD_PHASES = Object.freeze([
  LoadPhase.PYODIDE,
  LoadPhase.NUMPY,
  LoadPhase.SONA_WEB,
  LoadPhase.READY,
]);

/** Base class of every error that the bridge rejects a promise with. */
export class SonaError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "SonaError";
  }
}

/**
 * An exception raised by the Python engine. `pythonType` is the exception's
 * class name ("ValueError", "KeyError", ...), `message` the text it was
 * raised with and `pythonStack` the formatted Python traceback.
 */
export class PythonError extends SonaError {
  constructor(message, pythonType, pythonStack = "") {
    super(message);
    this.name = "PythonError";
    this.pythonType = pythonType;
    this.pythonStack = pythonStack;
  }
}

export class PythonValueError extends PythonError {
  constructor(message, pythonStack) {
    super(message, "ValueError", pythonStack);
    this.name = "PythonValueError";
  }
}

export class PythonTypeError extends PythonError {
  constructor(message, pythonStack) {
    super(message, "TypeError", pythonStack);
    this.name = "PythonTypeError";
  }
}

export class PythonKeyError extends PythonError {
  constructor(message, pythonStack) {
    super(message, "KeyError", pythonStack);
    this.name = "PythonKeyError";
  }
}

/** Pyodide, a package or the worker script could not be loaded; `url` names the file. */
export class LoadError extends SonaError {
  constructor(message, url = "") {
    super(message);
    this.name = "LoadError";
    this.url = url;
  }
}

/** The worker was terminated or crashed while a request was pending. */
export class WorkerClosedError extends SonaError {
  constructor(message) {
    super(message);
    this.name = "WorkerClosedError";
  }
}

const PYTHON_ERROR_CLASSES = {
  ValueError: PythonValueError,
  TypeError: PythonTypeError,
  KeyError: PythonKeyError,
};

/** Describe any thrown value as a structured-clone-safe object. */
export function serializeError(error) {
  if (error && typeof error === "object") {
    return {
      name: String(error.name ?? "Error"),
      message: String(error.message ?? error),
      pythonType: error.pythonType ?? null,
      stack: String(error.pythonStack || error.stack || ""),
      url: error.url ?? null,
    };
  }
  // A thrown non-Error (a string, a number) still becomes a usable message.
  return { name: "Error", message: String(error), pythonType: null, stack: "", url: null };
}

/** Rebuild the Error subclass that `serializeError` described. */
export function deserializeError(data) {
  if (data.pythonType) {
    const PythonClass = PYTHON_ERROR_CLASSES[data.pythonType];
    return PythonClass
      ? new PythonClass(data.message, data.stack)
      : new PythonError(data.message, data.pythonType, data.stack);
  }
  if (data.name === "LoadError") {
    return new LoadError(data.message, data.url ?? "");
  }
  if (data.name === "WorkerClosedError") {
    return new WorkerClosedError(data.message);
  }
  const error = new SonaError(data.message);
  if (data.name && data.name !== "Error") {
    error.name = data.name;
  }
  return error;
}

/**
 * List the ArrayBuffers of the typed arrays inside `value`, so that
 * postMessage moves them instead of copying. The search stops four levels of
 * arrays and objects deep, which covers every bridge result (a route
 * decision's pattern centroids are three levels down). A buffer is listed
 * once even if several views share it.
 */
export function collectTransfers(value, found = new Set(), depth = 0) {
  if (ArrayBuffer.isView(value)) {
    found.add(value.buffer);
  } else if (value instanceof ArrayBuffer) {
    found.add(value);
  } else if (value && typeof value === "object" && depth < 4) {
    const items = Array.isArray(value) ? value : Object.values(value);
    for (const item of items) {
      collectTransfers(item, found, depth + 1);
    }
  }
  return [...found];
}
