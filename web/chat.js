// The chat demo (index.html): each message is embedded in the worker, an
// AdaptiveRouter picks a response strategy, a local template writes the
// answer, and 👍/👎 teach the router. Learning is kept in IndexedDB
// (demo/persistence.js). window.sonaDemo exposes a small API for tests and
// for scripting the demo from the browser's developer tools.

import { SonaRuntime } from "./sona.js";
import { ChatBrain, EMBEDDERS } from "./demo/brain.js";
import { drawRateChart, RATE_WINDOW } from "./demo/chart.js";
import { LearningSync, StorageMode, storedEmbedder } from "./demo/persistence.js";
import { composeAnswer } from "./demo/responder.js";
import { readSiteConfig } from "./demo/site-config.js";
import {
  renderBotMessage,
  renderStats,
  renderStrategyTable,
  renderSystemMessage,
  renderUserMessage,
  showNotice,
  updateFeedback,
} from "./demo/view.js";
import { CHAT_CONSOLE_EMBEDDER, CHAT_CONSOLE_SETUP, consoleBanner, mountConsole } from "./console.js";
import { runPython } from "./demo/python.js";

/** Messages kept in the saved history (the engine's learning is kept whole). */
const HISTORY_LIMIT = 60;
/** Feedbacks kept for the chart. */
const FEEDBACK_LIMIT = 2000;
/** Messages kept on screen. */
const SCREEN_LIMIT = 200;
/** Interval of tick() calls, which run a background cycle when the engine's own interval has passed. */
const TICK_INTERVAL_MS = 3000;
const EMBEDDER_PREFERENCE_KEY = "sona-web-demo-embedder";

const SUGGESTIONS = [
  "how do I transfer money to my savings account",
  "tell me a joke",
  "what is a good recipe for pancakes",
  "my card was declined at the store",
  "when does my flight to Boston leave",
];

const $ = (id) => document.getElementById(id);

const app = {
  runtime: null,
  brain: null,
  sync: null,
  site: null,
  // Saved metadata: the message history tail and the feedback log.
  meta: { messages: [], feedback: [] },
  // Embeddings of this tab's answers by message id; feedback needs them and
  // they are not saved, so restored answers cannot be voted on.
  embeddings: new Map(),
  notices: [],
  lastStats: null,
  tickTimer: null,
  ready: false,
  // Milliseconds since navigation at each start-up step.
  timings: {},
};

let messageCounter = 0;

function newMessageId() {
  messageCounter += 1;
  return `${Date.now().toString(36)}-${messageCounter}-${Math.random().toString(36).slice(2, 7)}`;
}

function notify(kind, text) {
  app.notices.push({ kind, text });
  showNotice($("notices"), kind, text);
}

// ------------------------------------------------------------------ metadata

function getMeta() {
  return {
    messages: app.meta.messages.slice(-HISTORY_LIMIT),
    feedback: app.meta.feedback.slice(-FEEDBACK_LIMIT),
  };
}

/** Add a replayed outcome to the feedback log unless its message's feedback is already there. */
function addReplayedFeedback(outcome) {
  if (app.meta.feedback.some((entry) => entry.id === outcome.messageId)) {
    return;
  }
  const entry = { id: outcome.messageId, at: outcome.at, up: outcome.quality >= 0.5, strategy: outcome.strategy };
  app.meta.feedback = unionById(app.meta.feedback, [entry], FEEDBACK_LIMIT);
}

function unionById(ours, theirs, limit) {
  const byId = new Map();
  for (const item of [...theirs, ...ours]) {
    byId.set(item.id, { ...byId.get(item.id), ...item });
  }
  return [...byId.values()].sort((a, b) => a.at - b.at).slice(-limit);
}

/** Take metadata from a loaded record: replace ours (another lineage) or merge it with ours (another tab's save). */
function setMeta(meta, { replace }) {
  const messages = Array.isArray(meta?.messages) ? meta.messages : [];
  const feedback = Array.isArray(meta?.feedback) ? meta.feedback : [];
  if (replace) {
    app.meta = { messages: messages.slice(), feedback: feedback.slice() };
    app.embeddings.clear();
  } else {
    app.meta = {
      messages: unionById(app.meta.messages, messages, Math.max(HISTORY_LIMIT, app.meta.messages.length)),
      feedback: unionById(app.meta.feedback, feedback, FEEDBACK_LIMIT),
    };
  }
  renderAllMessages();
}

// ------------------------------------------------------------------ rendering

function messageItem(message) {
  if (message.role === "user") {
    return renderUserMessage(message);
  }
  if (message.role === "system") {
    return renderSystemMessage(message);
  }
  return renderBotMessage(message, { onFeedback: giveFeedbackFromClick, canVote: app.embeddings.has(message.id) });
}

function appendMessage(message) {
  const list = $("messages");
  list.append(messageItem(message));
  while (list.children.length > SCREEN_LIMIT) {
    list.firstElementChild.remove();
  }
  list.lastElementChild.scrollIntoView({ block: "end" });
}

function renderAllMessages() {
  const list = $("messages");
  list.replaceChildren(...app.meta.messages.slice(-SCREEN_LIMIT).map(messageItem));
  list.lastElementChild?.scrollIntoView({ block: "end" });
  $("empty-chat").hidden = app.meta.messages.length > 0;
}

function thumbsUps() {
  return app.meta.feedback.map((entry) => entry.up);
}

async function refreshStats() {
  const stats = await app.brain.stats();
  app.lastStats = stats;
  const ups = thumbsUps();
  const recent = ups.slice(-RATE_WINDOW);
  const rate = (values) => (values.length ? `${Math.round((100 * values.filter(Boolean).length) / values.length)}%` : "–");
  const engine = stats.engine;
  renderStats($("stats"), [
    ["Messages", String(app.meta.messages.filter((m) => m.role === "user").length), "messages"],
    ["Feedback", String(stats.outcomes), "outcomes"],
    ["Thumbs-up rate, last 20", rate(recent), "recent-rate"],
    ["Thumbs-up rate, all", rate(ups), "rate"],
    ["Patterns learned", String(engine.patterns), "patterns"],
    ["Background cycles", String(engine.background_cycles), "cycles"],
    ["EWC tasks", String(engine.ewc_tasks), "ewc-tasks"],
  ]);
  renderStrategyTable($("strategy-body"), stats.models);
  drawRateChart($("rate-chart"), ups);
  const saved = app.sync.mode === StorageMode.INDEXEDDB ? `saved in this browser (version ${app.sync.baseVersion})` : "in memory only";
  $("storage-status").textContent = `Embedder: ${EMBEDDERS[app.brain.embedderName].label}. Learning: ${saved}.`;
  return stats;
}

// ------------------------------------------------------------------ chatting

/** Send `text` as the user; resolves to the answer `{id, strategy, text, explored, probability}`. */
async function send(text) {
  const clean = String(text).trim();
  if (!clean) {
    throw new RangeError("message is empty");
  }
  const userMessage = { id: newMessageId(), role: "user", text: clean, at: Date.now() };
  app.meta.messages.push(userMessage);
  $("empty-chat").hidden = true;
  appendMessage(userMessage);

  const { x, decision } = await app.brain.decide(clean);
  const answer = {
    id: newMessageId(),
    role: "bot",
    text: composeAnswer(decision.model, clean),
    strategy: decision.model,
    decision,
    feedback: null,
    at: Date.now(),
  };
  app.embeddings.set(answer.id, x);
  app.meta.messages.push(answer);
  appendMessage(answer);
  app.sync.markDirty();
  return { id: answer.id, strategy: answer.strategy, text: answer.text, explored: decision.explored, probability: decision.probability };
}

/** Record 👍 (`up` true) or 👎 for answer `id`; resolves to the engine's outcome count and cycle summary. */
async function feedback(id, up) {
  const message = app.meta.messages.find((m) => m.id === id && m.role === "bot");
  if (!message) {
    throw new RangeError(`no answer with id ${JSON.stringify(id)} in this chat`);
  }
  const x = app.embeddings.get(id);
  if (!x || message.feedback === true || message.feedback === false) {
    throw new RangeError(`answer ${id} cannot take feedback: ${x ? "it already has feedback" : "it was restored from storage"}`);
  }
  message.feedback = Boolean(up);
  const item = document.querySelector(`li.message[data-id="${CSS.escape(id)}"]`);
  if (item) {
    updateFeedback(item, message, false);
  }

  const result = await app.sync.record({ x, strategy: message.strategy, quality: up ? 1 : 0, messageId: id });
  app.embeddings.delete(id);
  app.meta.feedback.push({ id, at: Date.now(), up: Boolean(up), strategy: message.strategy });
  if (result.cycle) {
    app.sync.markDirty();
  }
  await refreshStats();
  return result;
}

function giveFeedbackFromClick(id, up) {
  feedback(id, up).catch((error) => notify("error", `Feedback failed: ${error.message}`));
}

async function onSubmit(event) {
  event.preventDefault();
  const input = $("message-input");
  const text = input.value;
  if (!text.trim() || !app.ready) {
    return;
  }
  input.value = "";
  $("send-button").disabled = true;
  try {
    await send(text);
  } catch (error) {
    notify("error", `The message could not be answered: ${error.message}`);
  } finally {
    $("send-button").disabled = false;
    input.focus();
  }
}

// ------------------------------------------------------------------ state actions

function addSystemLine(text) {
  const message = { id: newMessageId(), role: "system", text, at: Date.now() };
  app.meta.messages.push(message);
  appendMessage(message);
}

/** Forget all learning and the history, in this tab and in storage. */
async function resetLearning() {
  await app.sync.replaceState(app.brain.initialState, {});
  addSystemLine("Learning was reset: the router starts from scratch.");
  app.sync.markDirty();
  await refreshStats();
}

function exportFileName() {
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
  return `sona-chat-${app.brain.embedderName}-${stamp}.sona`;
}

async function exportState() {
  await app.sync.flush();
  return app.brain.saveState();
}

async function downloadState() {
  const bytes = await exportState();
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = exportFileName();
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked after the click has started the download.
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Replace the learning with exported bytes; rejects with a readable Error (nothing changed) for a bad file. */
async function importState(bytes, name = "file") {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  try {
    await app.brain.validateState(data);
  } catch (error) {
    throw new Error(`${name} is not a saved state of this chat: ${error.message}. Nothing was changed.`);
  }
  await app.sync.replaceState(data, {});
  addSystemLine(`Imported the learning from ${name}.`);
  app.sync.markDirty();
  await refreshStats();
}

async function onImportFile(event) {
  const file = event.target.files?.[0];
  event.target.value = "";
  if (!file) {
    return;
  }
  try {
    await importState(new Uint8Array(await file.arrayBuffer()), file.name);
    notify("info", `Imported ${file.name}.`);
  } catch (error) {
    notify("error", error.message);
  }
}

/** Two clicks within a few seconds, instead of a blocking confirm() dialog. */
function confirmByDoubleClick(button, prompt, action) {
  let armed = null;
  const label = button.textContent;
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = prompt;
      armed = setTimeout(() => {
        armed = null;
        button.textContent = label;
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      notify("error", error.message);
    } finally {
      button.disabled = false;
    }
  });
}

/** Switch the text embedder: the learning starts fresh, because embeddings of another model mean nothing to it. */
async function switchEmbedder(name) {
  const select = $("embedder-select");
  select.disabled = true;
  const status = $("storage-status");
  status.textContent = `Loading the ${EMBEDDERS[name].label} embedder…`;
  try {
    const next = await ChatBrain.create({ runtime: app.runtime, embedder: name, modelsURL: app.site.modelsURL });
    await app.sync.serial(async () => {
      const previous = app.brain;
      app.brain = next;
      app.sync.brain = next;
      await previous.router.close();
    });
    await app.sync.replaceState(next.initialState, {});
    if (window.sonaDemo.console) {
      // The page's console took the chat's embedder when it started.
      await runPython(app.runtime, CHAT_CONSOLE_EMBEDDER, { namespace: "console", result: "none" });
    }
    localStorage.setItem(EMBEDDER_PREFERENCE_KEY, name);
    addSystemLine(`Switched to the ${EMBEDDERS[name].label} embedder; learning starts fresh.`);
  } catch (error) {
    notify("error", `The ${name} embedder could not be loaded (${error.message}); the chat keeps ${app.brain.embedderName}.`);
  } finally {
    select.value = app.brain.embedderName;
    select.disabled = false;
    await refreshStats();
  }
}

// ------------------------------------------------------------------ start-up

function buildStaticParts() {
  const suggestions = $("suggestions");
  for (const text of SUGGESTIONS) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "suggestion";
    button.textContent = text;
    button.addEventListener("click", () => {
      if (app.ready) {
        send(text).catch((error) => notify("error", error.message));
      }
    });
    suggestions.append(button);
  }

  const select = $("embedder-select");
  for (const [name, spec] of Object.entries(EMBEDDERS)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = spec.label;
    select.append(option);
  }

  $("composer").addEventListener("submit", onSubmit);
  $("message-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      onSubmit(event);
    }
  });
  $("import-file").addEventListener("change", onImportFile);
  $("export-button").addEventListener("click", () => downloadState().catch((error) => notify("error", error.message)));
  confirmByDoubleClick($("reset-button"), "Click again to forget everything", resetLearning);
  drawRateChart($("rate-chart"), []);
}

function showProgress({ phase, loaded, total }) {
  const bar = $("load-progress");
  bar.max = total;
  bar.value = loaded;
  const names = { pyodide: "Python runtime", numpy: "numpy", "sona-web": "sona-web", ready: "ready" };
  $("load-status").textContent = `Loading ${names[phase] ?? phase}… (${loaded}/${total})`;
}

async function createBrain() {
  const stored = await storedEmbedder();
  const preferred = localStorage.getItem(EMBEDDER_PREFERENCE_KEY);
  // WordLlama by default: on CLINC150 it lifts the learned thumbs-up rate well above
  // the hashed embedder's (docs/benchmarks.md) at about 0.1 ms per message.
  const requested = [stored, preferred, "wordllama"].find((name) => name && EMBEDDERS[name]);
  try {
    return await ChatBrain.create({ runtime: app.runtime, embedder: requested, modelsURL: app.site.modelsURL });
  } catch (error) {
    if (requested === "hashed") {
      throw error;
    }
    notify("warning", `The ${requested} embedder could not be loaded (${error.message}); using the built-in hashed embedder.`);
    return ChatBrain.create({ runtime: app.runtime, embedder: "hashed", modelsURL: app.site.modelsURL });
  }
}

function startTicking() {
  app.tickTimer = setInterval(async () => {
    if (document.hidden) {
      return;
    }
    try {
      const summary = await app.sync.serial(() => app.brain.tick());
      if (summary) {
        app.sync.markDirty();
        await refreshStats();
      }
    } catch (error) {
      notify("error", `Background learning failed: ${error.message}`);
    }
  }, TICK_INTERVAL_MS);
}

function mountPageConsole() {
  const details = $("dev-console");
  details.addEventListener(
    "toggle",
    () => {
      if (!details.open || details.dataset.mounted) {
        return;
      }
      details.dataset.mounted = "true";
      const consoleApi = mountConsole($("console"), {
        runtime: app.runtime,
        handles: () => ({ router: app.brain.router }),
        setup: CHAT_CONSOLE_SETUP,
        banner: consoleBanner(app.runtime, "this chat's live AdaptiveRouter"),
        // Code may have changed the router: save it and show the new numbers.
        onRun: () => {
          app.sync.markDirty();
          refreshStats().catch(() => {});
        },
      });
      window.sonaDemo.console = consoleApi;
      consoleApi.input.focus();
    },
  );
}

async function start() {
  buildStaticParts();
  app.site = await readSiteConfig();
  app.runtime = await SonaRuntime.load({ indexURL: app.site.pyodideIndexURL, onProgress: showProgress });
  app.timings.runtimeLoaded = performance.now();
  app.brain = await createBrain();
  app.timings.brainCreated = performance.now();
  $("embedder-select").value = app.brain.embedderName;
  $("embedder-select").addEventListener("change", (event) => switchEmbedder(event.target.value));

  app.sync = new LearningSync({
    brain: app.brain,
    getMeta,
    setMeta,
    onNotice: notify,
    onRemoteUpdate: () => refreshStats(),
    onReplay: addReplayedFeedback,
  });
  const { restored } = await app.sync.start();
  app.timings.stateRestored = performance.now();
  renderAllMessages();
  await refreshStats();
  if (restored) {
    const count = app.lastStats.outcomes;
    notify("info", `Restored what the chat learned earlier (${count} ${count === 1 ? "rating" : "ratings"}).`);
  }

  // Best effort: an IndexedDB transaction started here usually completes
  // after the page is gone, and every feedback is stored on arrival anyway.
  const saveNow = () => app.sync.flush();
  document.addEventListener("visibilitychange", () => document.visibilityState === "hidden" && saveNow());
  window.addEventListener("pagehide", saveNow);

  startTicking();
  mountPageConsole();
  $("loading").hidden = true;
  for (const id of ["message-input", "send-button"]) {
    $(id).disabled = false;
  }
  app.ready = true;
  $("message-input").focus();
}

const started = start();

window.sonaDemo = {
  ready: started,
  send: async (text) => (await started, send(text)),
  feedback: async (id, up) => (await started, feedback(id, up)),
  /** Engine and chat figures: outcomes, per-strategy stats, patterns, cycles, storage mode and version. */
  stats: async () => {
    await started;
    const stats = await refreshStats();
    return {
      outcomes: stats.outcomes,
      models: stats.models,
      patterns: stats.engine.patterns,
      backgroundCycles: stats.engine.background_cycles,
      ewcTasks: stats.engine.ewc_tasks,
      trajectories: stats.engine.trajectories_recorded,
      thumbsUp: thumbsUps(),
      messages: app.meta.messages.length,
      storage: app.sync.mode,
      version: app.sync.baseVersion,
      lineage: app.sync.lineage,
      embedder: app.brain.embedderName,
    };
  },
  probe: async (texts) => (await started, app.brain.probe(texts)),
  whenSaved: async () => (await started, app.sync.whenIdle()),
  exportState: async () => (await started, exportState()),
  importState: async (bytes, name) => (await started, importState(bytes, name)),
  reset: async () => (await started, resetLearning()),
  notices: () => app.notices.map((notice) => ({ ...notice })),
  timings: () => ({ ...app.timings }),
  /** Stop saving the state (feedback is still stored as it arrives), as if the tab closed before its next save. */
  pauseSaves: () => {
    app.sync.savesPaused = true;
  },
  /** Stop the periodic tick(), so that a test's figures change only through its own calls. */
  pauseTicks: () => clearInterval(app.tickTimer),
};

started.catch((error) => {
  $("load-status").textContent = `The chat could not start: ${error.message}`;
  $("loading").classList.add("failed");
  notify("error", `The chat could not start: ${error.message}`);
});
