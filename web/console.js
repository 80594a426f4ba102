// A Python console that runs code in the Pyodide worker (RUN_PYTHON).
//
// mountConsole() puts a console into any element; the chat page mounts one
// bound to its live router. Loaded by console.html, this module also starts
// a standalone console page whose `router` is a read-only copy of the
// chat's saved learning.
//
// Keys: Enter runs the input when it is a complete statement and otherwise
// starts a continuation line; Shift+Enter always adds a line; ArrowUp and
// ArrowDown on the first or last line walk the history. Output, results and
// tracebacks are inserted as text, never as HTML.

import { isCompletePython, runPython } from "./demo/python.js";

const HISTORY_KEY = "sona-web-console-history";
const HISTORY_LIMIT = 200;
const INDENT = "    ";

function loadHistory() {
  try {
    const items = JSON.parse(localStorage.getItem(HISTORY_KEY) ?? "[]");
    return Array.isArray(items) ? items.filter((item) => typeof item === "string") : [];
  } catch {
    // Storage blocked or the entry is not JSON: start with no history.
    return [];
  }
}

function saveHistory(items) {
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify(items.slice(-HISTORY_LIMIT)));
  } catch {
    // Storage blocked or full: history then lasts for this page only.
  }
}

function makeElement(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** Indentation for the next line: the current line's, plus one level after a colon. */
function nextIndent(code) {
  const lastLine = code.split("\n").at(-1);
  const indent = lastLine.match(/^\s*/)[0];
  return lastLine.trimEnd().endsWith(":") ? indent + INDENT : indent;
}

/**
 * Mount a console into `container`.
 *
 * - `runtime`: the SonaRuntime whose worker runs the code.
 * - `handles()`: returns `{name: engineOrRouter}` to bind before each run,
 *   so a replaced router is picked up.
 * - `namespace`: Python namespace name (default "console").
 * - `setup`: Python code run once before the first input (imports, names).
 * - `banner`: text shown first.
 * - `onRun(outcome)`: called after each run, e.g. to save what the code changed.
 *
 * Returns `{run(code), output, input}`; `run` executes code as if typed.
 */
export function mountConsole(container, { runtime, handles = () => ({}), namespace = "console", setup = "", banner = "", onRun = () => {} }) {
  const output = makeElement("div", "console-output");
  output.setAttribute("role", "log");
  output.setAttribute("aria-live", "polite");
  const form = makeElement("form", "console-form");
  const prompt = makeElement("span", "console-prompt", ">>>");
  prompt.setAttribute("aria-hidden", "true");
  const input = makeElement("textarea", "console-input");
  input.rows = 1;
  input.spellcheck = false;
  input.autocomplete = "off";
  input.setAttribute("aria-label", "Python input");
  input.placeholder = "Python code; Enter runs, Shift+Enter adds a line";
  form.append(prompt, input);
  container.replaceChildren(output, form);

  const history = loadHistory();
  let historyIndex = history.length;
  let draft = "";
  let busy = false;
  let ready = null;

  const print = (text, kind) => {
    if (text) {
      output.append(makeElement("pre", `console-${kind}`, text));
      output.scrollTop = output.scrollHeight;
    }
  };
  if (banner) {
    print(banner, "banner");
  }

  const resize = () => {
    input.rows = Math.min(12, input.value.split("\n").length);
  };

  const ensureSetup = () => {
    ready ??= setup
      ? runPython(runtime, setup, { namespace, handles: handles(), result: "none" }).then((outcome) => {
          print(outcome.stdout, "stdout");
          print(outcome.stderr, "stderr");
          if (outcome.error) {
            print(outcome.error.traceback, "error");
          }
        })
      : Promise.resolve();
    return ready;
  };

  async function run(code) {
    busy = true;
    input.disabled = true;
    prompt.textContent = "...";
    const echo = code.split("\n").map((line, index) => `${index === 0 ? ">>>" : "..."} ${line}`).join("\n");
    print(echo, "echo");
    let outcome;
    try {
      await ensureSetup();
      outcome = await runPython(runtime, code, { namespace, handles: handles(), result: "repr" });
      print(outcome.stdout, "stdout");
      print(outcome.stderr, "stderr");
      if (outcome.error) {
        print(outcome.error.traceback, "error");
      } else if (outcome.repr !== null) {
        print(outcome.repr, "result");
      }
      onRun(outcome);
    } catch (error) {
      // The run itself failed (the worker stopped, an invalid handle).
      print(`${error.name}: ${error.message}`, "error");
      outcome = { error: { type: error.name, message: error.message, traceback: "" } };
    } finally {
      busy = false;
      input.disabled = false;
      prompt.textContent = ">>>";
      input.focus();
    }
    return outcome;
  }

  async function submit() {
    const code = input.value;
    if (busy || code.trim() === "") {
      return;
    }
    let complete = true;
    try {
      complete = await isCompletePython(runtime, code);
    } catch {
      // If the check fails, running the code reports the problem.
    }
    if (!complete) {
      insertAtCursor(`\n${nextIndent(code)}`);
      return;
    }
    if (history.at(-1) !== code) {
      history.push(code);
      saveHistory(history);
    }
    historyIndex = history.length;
    draft = "";
    input.value = "";
    resize();
    await run(code);
  }

  function insertAtCursor(text) {
    const { selectionStart, selectionEnd, value } = input;
    input.value = value.slice(0, selectionStart) + text + value.slice(selectionEnd);
    input.selectionStart = input.selectionEnd = selectionStart + text.length;
    resize();
  }

  function showHistory(index) {
    if (historyIndex === history.length) {
      draft = input.value;
    }
    historyIndex = Math.max(0, Math.min(history.length, index));
    input.value = historyIndex === history.length ? draft : history[historyIndex];
    input.selectionStart = input.selectionEnd = input.value.length;
    resize();
  }

  input.addEventListener("keydown", (event) => {
    const beforeCursor = input.value.slice(0, input.selectionStart);
    const afterCursor = input.value.slice(input.selectionEnd);
    if (event.key === "Enter" && event.shiftKey) {
      event.preventDefault();
      insertAtCursor(`\n${nextIndent(beforeCursor)}`);
    } else if (event.key === "Enter") {
      event.preventDefault();
      submit();
    } else if (event.key === "ArrowUp" && !beforeCursor.includes("\n") && history.length) {
      event.preventDefault();
      showHistory(historyIndex - 1);
    } else if (event.key === "ArrowDown" && !afterCursor.includes("\n") && historyIndex < history.length) {
      event.preventDefault();
      showHistory(historyIndex + 1);
    } else if (event.key === "Tab" && !event.shiftKey) {
      event.preventDefault();
      insertAtCursor(INDENT);
    }
  });
  input.addEventListener("input", resize);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });

  return { run, output, input };
}

/** Python that binds `embedder` to the text embedder the chat loaded in its namespace "chat". */
export const CHAT_CONSOLE_EMBEDDER = [
  "from sona_web._console import get_namespace",
  "embedder = get_namespace('chat')['embedder']",
  "del get_namespace",
].join("\n");

/** Python run before the first input of a console bound to the chat's router. */
export const CHAT_CONSOLE_SETUP = [
  "import numpy as np",
  "import sona_web",
  "from sona_web import AdaptiveRouter, SonaConfig, SonaEngine",
  CHAT_CONSOLE_EMBEDDER,
].join("\n");

export function consoleBanner(runtime, routerNote) {
  const version = runtime.info?.pyodideVersion ?? "?";
  return [
    `Python in Pyodide ${version}, in this page's worker.`,
    `Names: router (${routerNote}), embedder (the chat's text embedder), sona_web, np.`,
    "Try: router.route(embedder.embed(['what is my balance'])[0]).model",
    "Enter runs a complete statement, Shift+Enter adds a line, ArrowUp/ArrowDown walk the history.",
  ].join("\n");
}

async function startConsolePage(root) {
  const [{ SonaRuntime }, { ChatBrain, EMBEDDERS }, { storedEmbedder }, store, { readSiteConfig }] = await Promise.all([
    import("./sona.js"),
    import("./demo/brain.js"),
    import("./demo/persistence.js"),
    import("./store.js"),
    import("./demo/site-config.js"),
  ]);
  const status = root.querySelector("#console-status");
  const progress = root.querySelector("#console-progress");
  const site = await readSiteConfig();
  try {
    const runtime = await SonaRuntime.load({
      indexURL: site.pyodideIndexURL,
      onProgress: ({ phase, loaded, total }) => {
        progress.max = total;
        progress.value = loaded;
        status.textContent = `Loading ${phase}…`;
      },
    });
    const embedder = (await storedEmbedder()) ?? "hashed";
    const brain = await ChatBrain.create({ runtime, embedder: EMBEDDERS[embedder] ? embedder : "hashed", modelsURL: site.modelsURL });
    let note = "a fresh router: the chat has saved nothing yet";
    try {
      const { state } = await store.readSnapshot(await store.openDatabase());
      if (state?.bytes) {
        await brain.loadState(state.bytes);
        note = `a copy of the chat's saved learning, version ${state.version}; changes here are not saved`;
      }
    } catch (error) {
      note = `a fresh router: the chat's saved learning could not be read (${error.message})`;
    }
    progress.hidden = true;
    status.textContent = "Ready.";
    const consoleApi = mountConsole(root.querySelector("#console"), {
      runtime,
      handles: () => ({ router: brain.router }),
      setup: CHAT_CONSOLE_SETUP,
      banner: consoleBanner(runtime, note),
    });
    consoleApi.input.focus();
    window.sonaConsole = consoleApi;
  } catch (error) {
    progress.hidden = true;
    status.textContent = `The console could not start: ${error.message}`;
    status.classList.add("notice-error");
  }
}

const pageRoot = typeof document !== "undefined" ? document.getElementById("console-page") : null;
if (pageRoot) {
  startConsolePage(pageRoot);
}
