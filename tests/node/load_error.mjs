// Create an engine from a Pyodide folder and print how loading went, as JSON:
// {name, message, url, isLoadError, phases, adapted}. `name` is null when the
// engine loaded; `adapted` is then the length of one applyMicroLora result.
// Used by test_node_module.py with folders that lack a file and with the
// `packages` option.
//
//   node tests/node/load_error.mjs PYODIDE_DIR [PACKAGES_JSON]

import { LoadError, SonaEngine } from "../../web/sona.js";

const [indexURL, packagesJson] = process.argv.slice(2);
const packages = packagesJson === undefined ? undefined : JSON.parse(packagesJson);
const phases = [];
let outcome;
try {
  const engine = await SonaEngine.create({ hiddenDim: 8, indexURL, packages, onProgress: (event) => phases.push(event.phase) });
  const adapted = await engine.applyMicroLora(new Float32Array(8));
  outcome = { name: null, message: null, url: null, isLoadError: false, adapted: adapted.length };
} catch (error) {
  outcome = {
    name: error.name,
    message: error.message,
    url: error.url ?? null,
    isLoadError: error instanceof LoadError,
    adapted: null,
  };
}
console.log(JSON.stringify({ ...outcome, phases }));
