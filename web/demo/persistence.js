// Keeps the chat's learning in IndexedDB and in step across tabs.
//
// The design (docs/persistence.md has the long form):
// - Every feedback outcome is written to the "pending" store the moment it
//   happens, before the engine learns from it, so a tab closed at any time
//   loses no feedback.
// - A save runs under the Web Lock SAVE_LOCK and reads the stored state and
//   the pending outcomes. If another tab saved since this tab last loaded,
//   it loads that newer state first. Then it applies every pending outcome
//   the engine has not seen yet, and writes the new state and deletes the
//   outcomes it folded in, in one transaction.
// - After a save, the tab announces the new version on a BroadcastChannel
//   and other tabs load it (plus the pending outcomes) when idle.
// - Without IndexedDB, or when storage is full, the chat keeps learning in
//   memory and shows a notice.

import {
  StoreUnavailableError,
  addPending,
  commitState,
  isQuotaError,
  openDatabase,
  quarantineState,
  readSnapshot,
  requestPersistence,
} from "../store.js";

/** Format of the stored record; bump it and extend migrateRecord() when the record changes. */
export const RECORD_SCHEMA = 1;
export const SAVE_LOCK = "sona-web-demo-save";
export const CHANNEL_NAME = "sona-web-demo";
/** Delay between the last change and its save, in ms. */
export const SAVE_DELAY_MS = 400;
/** Longest a change waits for its save while new changes keep coming, in ms. */
export const MAX_SAVE_DELAY_MS = 3000;

export const StorageMode = Object.freeze({ INDEXEDDB: "indexeddb", MEMORY: "memory" });

/** Bring a stored record to RECORD_SCHEMA, or throw an Error saying why it cannot be used. */
export function migrateRecord(record) {
  if (!record || typeof record !== "object") {
    throw new TypeError(`stored record is ${record === null ? "null" : typeof record}, not an object`);
  }
  switch (record.schema) {
    case RECORD_SCHEMA:
      break;
    default:
      throw new RangeError(`stored record has schema ${JSON.stringify(record.schema)}; this page reads schema ${RECORD_SCHEMA}`);
  }
  if (!(record.bytes instanceof Uint8Array) || record.bytes.length === 0) {
    throw new TypeError("stored record has no state bytes");
  }
  return record;
}

function newLineage() {
  return crypto.randomUUID();
}

export class LearningSync {
  /**
   * - `brain`: the ChatBrain whose state is saved.
   * - `getMeta()`: the chat's metadata to store beside the state (small, cloneable).
   * - `setMeta(meta, {replace})`: take metadata from a loaded record; `replace`
   *   is true when the record starts another history (reset, import, first load).
   * - `onNotice(kind, text)`: show a message to the user.
   * - `onRemoteUpdate()`: another tab's learning was loaded.
   * - `onReplay(outcome)`: a stored outcome was applied to the engine here,
   *   possibly one of another tab that closed before saving its history.
   */
  constructor({ brain, getMeta, setMeta, onNotice = () => {}, onRemoteUpdate = () => {}, onReplay = () => {}, dbName }) {
    this.brain = brain;
    this.getMeta = getMeta;
    this.setMeta = setMeta;
    this.onNotice = onNotice;
    this.onRemoteUpdate = onRemoteUpdate;
    this.onReplay = onReplay;
    this.dbName = dbName;
    this.tabId = crypto.randomUUID();
    this.mode = StorageMode.MEMORY;
    this.db = null;
    this.lineage = newLineage();
    this.baseVersion = 0;
    this.applied = new Set();
    this.dirty = false;
    this.queue = Promise.resolve();
    this.saveTimer = null;
    this.saveRequestedAt = 0;
    this.syncTimer = null;
    this.channel = null;
    this.lastError = null;
    this.started = false;
    this.persistent = null;
    // Set by tests to imitate a tab that closes before its save runs;
    // feedback is still stored in "pending" on arrival.
    this.savesPaused = false;
  }

  /** Open the database, restore the stored state (or write a first record), and start listening to other tabs. */
  async start() {
    try {
      this.db = await openDatabase(this.dbName);
      this.mode = StorageMode.INDEXEDDB;
    } catch (error) {
      this.fallBackToMemory(error);
      return { restored: false };
    }
    requestPersistence().then((granted) => {
      this.persistent = granted;
    });
    this.listen();
    let restored = false;
    try {
      await this.serial(() =>
        this.withLock(async () => {
          restored = await this.reconcile(true);
        }),
      );
    } catch (error) {
      this.reportError(error);
    }
    this.started = true;
    return { restored };
  }

  listen() {
    if (typeof BroadcastChannel === "undefined") {
      return;
    }
    this.channel = new BroadcastChannel(CHANNEL_NAME);
    this.channel.onmessage = (event) => {
      const message = event.data;
      if (message?.type === "saved" && message.tabId !== this.tabId && this.mode === StorageMode.INDEXEDDB) {
        this.scheduleSync();
      }
    };
  }

  /** Run `task` after every earlier task of this tab, so engine updates never interleave. */
  serial(task) {
    const run = this.queue.then(task);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Run `task` while holding the cross-tab save lock (or directly where Web Locks are missing). */
  withLock(task) {
    if (navigator.locks?.request) {
      return navigator.locks.request(SAVE_LOCK, task);
    }
    return task();
  }

  /** Stop reading and writing storage in this tab, keeping what it learned in memory. */
  detach(reason) {
    this.mode = StorageMode.MEMORY;
    this.db = null;
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.onNotice("warning", `This tab stopped saving, because ${reason}.`);
  }

  fallBackToMemory(error) {
    this.lastError = error;
    this.mode = StorageMode.MEMORY;
    this.db = null;
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    const reason = isQuotaError(error)
      ? "the browser's storage for this site is full"
      : error instanceof StoreUnavailableError
        ? error.message
        : `saving failed (${error?.name ?? "Error"}: ${error?.message ?? error})`;
    this.onNotice(
      "warning",
      `Learning is kept in memory only, because ${reason}. It works as usual but is lost when this tab closes; export the state to keep it.`,
    );
  }

  /**
   * Record one feedback outcome: store it, then let the engine learn from it.
   * `outcome` is `{x, strategy, quality, messageId}`. Resolves to the brain's
   * learn() result.
   */
  record(outcome) {
    return this.serial(async () => {
      let key = null;
      if (this.mode === StorageMode.INDEXEDDB) {
        try {
          key = await addPending(this.db, { ...outcome, lineage: this.lineage, tabId: this.tabId, at: Date.now() });
        } catch (error) {
          this.fallBackToMemory(error);
        }
      }
      const result = await this.brain.learn(outcome.x, outcome.strategy, outcome.quality);
      if (key !== null) {
        this.applied.add(key);
      }
      this.markDirty();
      return result;
    });
  }

  /** Note an unsaved change (new messages, a background cycle) and save it soon. */
  markDirty() {
    this.dirty = true;
    this.scheduleSave();
  }

  scheduleSave(delay = SAVE_DELAY_MS) {
    if (this.mode !== StorageMode.INDEXEDDB || this.savesPaused) {
      return;
    }
    const now = Date.now();
    if (this.saveTimer !== null) {
      if (now - this.saveRequestedAt >= MAX_SAVE_DELAY_MS) {
        // A steady stream of changes would otherwise postpone the save forever.
        return;
      }
      clearTimeout(this.saveTimer);
    } else {
      this.saveRequestedAt = now;
    }
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.flush();
    }, delay);
  }

  scheduleSync() {
    clearTimeout(this.syncTimer);
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      this.serial(() => this.withLock(() => this.reconcile(false))).then(
        (changed) => changed && this.onRemoteUpdate(),
        (error) => this.reportError(error),
      );
    }, 50);
  }

  /** Save now (if anything changed); resolves when the save is done. */
  flush() {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (this.mode !== StorageMode.INDEXEDDB || this.savesPaused) {
      return this.serial(() => {});
    }
    return this.serial(() => this.withLock(() => this.reconcile(true))).catch((error) => this.reportError(error));
  }

  /** Resolve once no save is scheduled or running. */
  async whenIdle() {
    while (this.saveTimer !== null || this.syncTimer !== null) {
      await this.flush();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await this.serial(() => {});
  }

  reportError(error) {
    if (isQuotaError(error) || error instanceof StoreUnavailableError || error?.name === "InvalidStateError") {
      this.fallBackToMemory(error);
    } else {
      this.lastError = error;
      this.onNotice("error", `Saving the learning failed: ${error?.message ?? error}`);
    }
  }

  /**
   * Bring the engine up to date with storage and, if `write`, store the
   * result. Must run inside serial() and withLock(). Resolves to true when a
   * stored state was loaded into the engine.
   */
  async reconcile(write) {
    if (this.mode !== StorageMode.INDEXEDDB) {
      return false;
    }
    const snapshot = await readSnapshot(this.db);
    let state = snapshot.state;
    let loaded = false;

    if (state && (state.version !== this.baseVersion || state.lineage !== this.lineage)) {
      loaded = await this.loadRecord(state, snapshot.pending);
      if (this.mode !== StorageMode.INDEXEDDB) {
        return false;
      }
      if (!loaded) {
        state = null;
        snapshot.pending = snapshot.pending.filter((outcome) => outcome.lineage !== snapshot.state.lineage);
      }
    }

    const folded = [];
    for (const outcome of snapshot.pending) {
      folded.push(outcome.key);
      if (outcome.lineage !== this.lineage || this.applied.has(outcome.key)) {
        // Outcomes of an earlier lineage (before a reset or import) are dropped.
        continue;
      }
      await this.brain.learn(outcome.x, outcome.strategy, outcome.quality);
      this.applied.add(outcome.key);
      this.onReplay(outcome);
      loaded = true;
    }

    const changed = !state || folded.length > 0 || this.dirty;
    if (write && changed) {
      await this.writeRecord((state?.version ?? 0) + 1, folded);
    }
    return loaded;
  }

  /** Load a stored record into the engine; on failure quarantine it. Resolves to whether it loaded. */
  async loadRecord(state, pending) {
    if (this.started && state?.embedder !== this.brain.embedderName) {
      // Another tab switched the embedder: its record is fine, but this
      // tab's engine cannot read embeddings of another model.
      this.detach(`another tab switched the text embedder to ${state?.embedder}; reload this tab to continue with it`);
      return false;
    }
    try {
      const record = migrateRecord(state);
      if (record.embedder !== this.brain.embedderName) {
        throw new RangeError(
          `it was learned with the ${record.embedder} embedder, which could not be loaded here (this tab uses ${this.brain.embedderName})`,
        );
      }
      await this.brain.loadState(record.bytes);
      this.setMeta(record.meta ?? {}, { replace: record.lineage !== this.lineage });
      this.lineage = record.lineage;
      this.baseVersion = record.version;
      this.applied.clear();
      return true;
    } catch (error) {
      const reason = error?.message ?? String(error);
      const stale = pending.filter((outcome) => outcome.lineage === state?.lineage).map((outcome) => outcome.key);
      await quarantineState(this.db, state, reason, stale);
      await this.brain.reset();
      this.lineage = newLineage();
      this.baseVersion = 0;
      this.applied.clear();
      this.setMeta({}, { replace: true });
      this.onNotice(
        "error",
        `The saved learning could not be loaded (${reason}). It was set aside in the "quarantine" store and the chat starts fresh.`,
      );
      return false;
    }
  }

  async writeRecord(version, foldedKeys) {
    const record = {
      schema: RECORD_SCHEMA,
      version,
      lineage: this.lineage,
      embedder: this.brain.embedderName,
      savedAt: Date.now(),
      tabId: this.tabId,
      bytes: await this.brain.saveState(),
      meta: this.getMeta(),
    };
    await commitState(this.db, record, foldedKeys);
    this.baseVersion = version;
    for (const key of foldedKeys) {
      this.applied.delete(key);
    }
    this.dirty = false;
    this.channel?.postMessage({ type: "saved", version, lineage: this.lineage, tabId: this.tabId });
  }

  /**
   * Replace all learning with `bytes` (an imported state, or the fresh state
   * on reset) and `meta`, starting a new lineage. Bad bytes reject before
   * anything changes.
   */
  replaceState(bytes, meta) {
    return this.serial(async () => {
      await this.brain.loadState(bytes);
      this.lineage = newLineage();
      this.applied.clear();
      this.setMeta(meta, { replace: true });
      if (this.mode !== StorageMode.INDEXEDDB) {
        return;
      }
      await this.withLock(async () => {
        const snapshot = await readSnapshot(this.db);
        await this.writeRecord((snapshot.state?.version ?? 0) + 1, snapshot.pending.map((outcome) => outcome.key));
      });
    });
  }

  close() {
    clearTimeout(this.saveTimer);
    clearTimeout(this.syncTimer);
    this.channel?.close();
  }
}

/** Read which embedder the stored learning was made with, or null (nothing stored, no IndexedDB). */
export async function storedEmbedder(dbName) {
  try {
    const { state } = await readSnapshot(await openDatabase(dbName));
    return typeof state?.embedder === "string" ? state.embedder : null;
  } catch {
    return null;
  }
}
