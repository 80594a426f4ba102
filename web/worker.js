// Module Web Worker that runs Pyodide off the page's main thread. It replies
// to each request of protocol.js with one RESULT or ERROR message and moves
// the typed arrays of a result to the page instead of copying them.

import { PyodideHost } from "./host.js";
import { MessageType, collectTransfers, serializeError } from "./protocol.js";

const host = new PyodideHost();

// Requests are served one at a time in arrival order: Python is not
// re-entrant, and a call sent while INIT is still loading must wait for it.
let queue = Promise.resolve();

async function serve(message) {
  const { id } = message;
  const onProgress = (progress) => {
    self.postMessage({ type: MessageType.PROGRESS, id, ...progress });
  };

  try {
    const value = await host.handle(message, onProgress);
    self.postMessage({ type: MessageType.RESULT, id, value }, collectTransfers(value));
  } catch (error) {
    self.postMessage({ type: MessageType.ERROR, id, error: serializeError(error) });
  }
}

self.addEventListener("message", (event) => {
  queue = queue.then(() => serve(event.data));
});
