// IndexedDB storage of the chat demo's learning: small named async
// functions over one database.
//
// Object stores (schema version DB_VERSION):
// - "state": one record under the key "current": the router's saveState()
//   bytes with the chat's metadata and a save counter, written whole.
// - "pending": feedback outcomes written the moment they happen and not yet
//   folded into "state" (auto-increment keys, so key order is arrival order).
// - "quarantine": records that failed to load, kept for inspection.
//
// Every function that writes does so in one transaction, so a tab closed
// mid-save leaves the previous record: IndexedDB aborts an unfinished
// transaction as a whole. See docs/persistence.md for how tabs share it.

export const DB_NAME = "sona-web-demo";
export const DB_VERSION = 1;
export const STATE_STORE = "state";
export const PENDING_STORE = "pending";
export const QUARANTINE_STORE = "quarantine";
export const STATE_KEY = "current";

/** IndexedDB is missing, blocked, or failed to open; the demo then keeps its learning in memory. */
export class StoreUnavailableError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "StoreUnavailableError";
  }
}

/** Tell whether `error` means the storage quota is used up. */
export function isQuotaError(error) {
  // Chromium reports QuotaExceededError; Firefox used NS_ERROR_DOM_QUOTA_REACHED.
  return error?.name === "QuotaExceededError" || error?.name === "NS_ERROR_DOM_QUOTA_REACHED";
}

/** Resolve with the result of an IDBRequest, or reject with its error. */
export function promisifyRequest(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Resolve when `transaction` commits; reject when it aborts or fails. */
export function transactionDone(transaction) {
  const done = new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onabort = () => reject(transaction.error ?? new DOMException("transaction aborted", "AbortError"));
    transaction.onerror = () => reject(transaction.error);
  });
  // Callers that fail on a request first never await this promise; marking
  // it handled keeps its rejection from being reported a second time.
  done.catch(() => {});
  return done;
}

/**
 * Create or migrate the object stores. Each case upgrades from one version
 * to the next and falls through, so a database of any older version reaches
 * DB_VERSION step by step.
 */
function upgrade(db, oldVersion) {
  switch (oldVersion) {
    case 0:
      db.createObjectStore(STATE_STORE);
      db.createObjectStore(PENDING_STORE, { autoIncrement: true });
      db.createObjectStore(QUARANTINE_STORE, { autoIncrement: true });
    // falls through
    default:
      break;
  }
}

const connections = new Map();

/**
 * Open the database (once per name; later calls share the connection).
 * Rejects with StoreUnavailableError when IndexedDB is missing or refuses
 * to open, as in some private windows.
 */
export function openDatabase(name = DB_NAME) {
  if (!connections.has(name)) {
    const opening = openConnection(name);
    connections.set(name, opening);
    // A failed open is not cached, so a later call can retry.
    opening.catch(() => connections.delete(name));
  }
  return connections.get(name);
}

async function openConnection(name) {
  let request;
  try {
    if (typeof indexedDB === "undefined" || indexedDB === null) {
      throw new TypeError("indexedDB is not defined");
    }
    request = indexedDB.open(name, DB_VERSION);
  } catch (error) {
    throw new StoreUnavailableError(`IndexedDB is not available: ${error.message}`, { cause: error });
  }
  request.onupgradeneeded = (event) => upgrade(request.result, event.oldVersion);
  request.onblocked = () => {
    // Another tab still holds an older version open; it closes its
    // connection on versionchange (below), after which this open proceeds.
  };

  let db;
  try {
    db = await promisifyRequest(request);
  } catch (error) {
    throw new StoreUnavailableError(`IndexedDB database "${name}" could not be opened: ${error?.message ?? error}`, {
      cause: error,
    });
  }
  // Let a newer page version upgrade the schema instead of blocking it, and
  // reopen lazily after the browser closes the connection (storage cleared).
  db.onversionchange = () => {
    db.close();
    connections.delete(name);
  };
  db.onclose = () => connections.delete(name);
  return db;
}

/** Close the shared connection of `name`, if open. */
export async function closeDatabase(name = DB_NAME) {
  const opening = connections.get(name);
  connections.delete(name);
  if (opening) {
    try {
      (await opening).close();
    } catch {
      // It never opened, so there is nothing to close.
    }
  }
}

/** Read the state record and every pending outcome in one consistent snapshot. */
export async function readSnapshot(db) {
  const transaction = db.transaction([STATE_STORE, PENDING_STORE], "readonly");
  const done = transactionDone(transaction);
  const state = promisifyRequest(transaction.objectStore(STATE_STORE).get(STATE_KEY));
  const pendingStore = transaction.objectStore(PENDING_STORE);
  const keys = promisifyRequest(pendingStore.getAllKeys());
  const values = promisifyRequest(pendingStore.getAll());
  const [record, pendingKeys, pendingValues] = await Promise.all([state, keys, values]);
  await done;
  const pending = pendingKeys.map((key, index) => ({ ...pendingValues[index], key }));
  return { state: record ?? null, pending };
}

/** Store one feedback outcome; resolves to its key. */
export async function addPending(db, outcome) {
  const transaction = db.transaction(PENDING_STORE, "readwrite");
  const done = transactionDone(transaction);
  const key = await promisifyRequest(transaction.objectStore(PENDING_STORE).add(outcome));
  await done;
  return key;
}

/**
 * Write the state record and delete the pending outcomes it now contains,
 * in one transaction: either both happen or neither.
 */
export async function commitState(db, record, foldedKeys = []) {
  const transaction = db.transaction([STATE_STORE, PENDING_STORE], "readwrite");
  const done = transactionDone(transaction);
  try {
    transaction.objectStore(STATE_STORE).put(record, STATE_KEY);
    const pending = transaction.objectStore(PENDING_STORE);
    for (const key of foldedKeys) {
      pending.delete(key);
    }
  } catch (error) {
    // A synchronous throw (a bad key, a value that cannot be cloned) leaves
    // the transaction open: abort it so the puts above are undone.
    transaction.abort();
    await done.catch(() => {});
    throw error;
  }
  await done;
}

/**
 * Move the state record into the quarantine store with `reason`, and drop
 * the pending outcomes that were meant to extend it, in one transaction.
 * Resolves to the quarantine key.
 */
export async function quarantineState(db, record, reason, pendingKeys = []) {
  const transaction = db.transaction([STATE_STORE, PENDING_STORE, QUARANTINE_STORE], "readwrite");
  const done = transactionDone(transaction);
  const entry = { reason: String(reason), quarantinedAt: Date.now(), record };
  const key = promisifyRequest(transaction.objectStore(QUARANTINE_STORE).add(entry));
  transaction.objectStore(STATE_STORE).delete(STATE_KEY);
  const pending = transaction.objectStore(PENDING_STORE);
  for (const pendingKey of pendingKeys) {
    pending.delete(pendingKey);
  }
  await done;
  return key;
}

/** List quarantined records, oldest first, as `{key, reason, quarantinedAt, record}`. */
export async function listQuarantine(db) {
  const transaction = db.transaction(QUARANTINE_STORE, "readonly");
  const done = transactionDone(transaction);
  const store = transaction.objectStore(QUARANTINE_STORE);
  const [keys, values] = await Promise.all([promisifyRequest(store.getAllKeys()), promisifyRequest(store.getAll())]);
  await done;
  return keys.map((key, index) => ({ key, ...values[index] }));
}

/**
 * Ask the browser to keep this site's storage under storage pressure.
 * Resolves to true, false, or null where the Storage API is missing.
 */
export async function requestPersistence() {
  if (!navigator.storage?.persist) {
    return null;
  }
  try {
    return (await navigator.storage.persisted()) || (await navigator.storage.persist());
  } catch {
    return false;
  }
}
