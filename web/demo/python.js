// Page side of the RUN_PYTHON message (see python-runner.js): run Python
// source in the worker, in a named namespace, with bridge objects and plain
// values bound to names.

import { MessageType, PythonError } from "../protocol.js";

/**
 * Run `code` and resolve to `{stdout, stderr, repr, value, error}`. An
 * exception raised by the code comes back in `error` as `{type, message,
 * traceback}`; invalid options reject the promise.
 *
 * - `runtime`: a SonaRuntime (`router.runtime`).
 * - `namespace`: name of the Python namespace, kept between runs.
 * - `handles`: `{name: engineOrRouter}` bound as Python objects before the run.
 * - `values`: `{name: value}` bound as Python values (typed arrays become memoryviews).
 * - `result`: "repr" (console), "value" (converted like bridge results) or "none".
 * - `transfer`: ArrayBuffers of `values` to move to the worker instead of copying.
 */
export function runPython(runtime, code, options = {}) {
  const { namespace = "console", handles = {}, values = {}, result = "repr", reset = false, transfer = [] } = options;
  const handleIds = {};
  for (const [name, object] of Object.entries(handles)) {
    if (object?.closed) {
      return Promise.reject(new TypeError(`handles.${name} is closed`));
    }
    handleIds[name] = object.handle;
  }
  return runtime.request(
    { type: MessageType.RUN_PYTHON, code, namespace, handles: handleIds, values, result, reset },
    transfer,
  );
}

/** Run `code` for its value: resolves to the last expression's value, rejects with PythonError if the code raised. */
export async function evalPython(runtime, code, options = {}) {
  const outcome = await runPython(runtime, code, { ...options, result: "value" });
  if (outcome.error) {
    throw new PythonError(outcome.error.message, outcome.error.type, outcome.error.traceback);
  }
  return outcome.value;
}

/** Resolve to false while `code` is an unfinished statement (an open block or bracket). */
export function isCompletePython(runtime, code) {
  return runtime.request({ type: MessageType.RUN_PYTHON, code, check: true });
}
