// The Pyodide side of the RUN_PYTHON message: runs Python source in a named
// namespace of sona_web._console, for the developer console and for the chat
// demo's calls that the engine bridge does not cover (text embedders, the
// router's background cycle). Used by host.js; see runPython() in
// demo/python.js for the page side.

const TO_JS_OPTIONS = { dict_converter: Object.fromEntries, create_pyproxies: false };

// One proxy of the sona_web._console module per Pyodide instance, kept for
// the life of the instance like the bridge module in host.js.
const consoleModules = new WeakMap();

function consoleModule(pyodide) {
  let module = consoleModules.get(pyodide);
  if (!module) {
    module = pyodide.pyimport("sona_web._console");
    consoleModules.set(pyodide, module);
  }
  return module;
}

/** Call a function of sona_web._console, unwrap its envelope and free every proxy made here. */
function callConsole(pyodide, name, args, rebuildError) {
  const func = consoleModule(pyodide)[name];
  let envelope;
  try {
    envelope = func(...args);
  } finally {
    func.destroy();
  }
  let result;
  try {
    result = envelope.toJs(TO_JS_OPTIONS);
  } finally {
    envelope.destroy();
  }
  if (!result.ok) {
    throw rebuildError(result.error);
  }
  return result.value;
}

/**
 * Serve one RUN_PYTHON message: `{code, namespace, handles, values, result,
 * reset}` runs code, `{code, check: true}` only tells whether the code is a
 * complete statement. `rebuildError` turns an error envelope into an Error
 * (host.js passes protocol.js's deserializeError).
 */
export function servePythonRun(pyodide, message, rebuildError) {
  if (message.check) {
    return callConsole(pyodide, "check_code", [message.code], rebuildError);
  }
  const values = pyodide.toPy(message.values ?? {}, { depth: 1 });
  const handles = pyodide.toPy(message.handles ?? {});
  try {
    return callConsole(
      pyodide,
      "run_code",
      [message.code, message.namespace ?? "console", handles, values, message.result ?? "repr", Boolean(message.reset)],
      rebuildError,
    );
  } finally {
    values.destroy();
    handles.destroy();
  }
}
