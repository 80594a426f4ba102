#!/usr/bin/env node
// A small HTTP service around sona-web, on node:http with no framework.
//
//   node examples/node-server/server.mjs [--port 3000] [--routes gpt-4:1,mixtral:0]
//
// It listens on 127.0.0.1 only. The endpoints, limits and options are
// described in README.md beside this file.

import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { AdaptiveRouter, PythonError, PythonKeyError, SonaEngine } from "../../web/sona.js";

const HOST = "127.0.0.1";
const DEFAULT_PYODIDE_DIR = fileURLToPath(new URL("../../dist/pyodide/", import.meta.url));
const MAX_TEXT_LENGTH = 10_000;
const MAX_SESSION_ID_LENGTH = 128;
const MAX_PATTERNS = 20;

// ---------------------------------------------------------------- options

function readOptions(argv, env) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string" },
      dim: { type: "string" },
      routes: { type: "string" },
      "max-sessions": { type: "string" },
      "session-ttl-ms": { type: "string" },
      "max-body-bytes": { type: "string" },
      "pyodide-dir": { type: "string" },
      preset: { type: "string" },
      verbose: { type: "boolean", default: false },
    },
    strict: true,
  });

  return {
    port: integer("port", values.port ?? env.PORT ?? "3000", 0, 65_535),
    dim: integer("dim", values.dim ?? env.SONA_DIM ?? "256", 2, 8192),
    routes: parseRoutes(values.routes ?? env.SONA_ROUTES ?? ""),
    maxSessions: integer("max-sessions", values["max-sessions"] ?? env.SONA_MAX_SESSIONS ?? "1000", 1, 1_000_000),
    sessionTtlMs: integer("session-ttl-ms", values["session-ttl-ms"] ?? env.SONA_SESSION_TTL_MS ?? "600000", 1, 86_400_000),
    maxBodyBytes: integer("max-body-bytes", values["max-body-bytes"] ?? env.SONA_MAX_BODY_BYTES ?? "65536", 64, 16_777_216),
    pyodideDir: values["pyodide-dir"] ?? env.SONA_PYODIDE_DIR ?? DEFAULT_PYODIDE_DIR,
    preset: values.preset ?? env.SONA_PRESET ?? "default",
    verbose: values.verbose,
  };
}

function integer(name, text, low, high) {
  const value = Number(text);
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new RangeError(`--${name} must be an integer in [${low}, ${high}], got ${JSON.stringify(text)}`);
  }
  return value;
}

/** Parse "name:cost,name:cost" into [{name, cost}]; an empty string means no router. */
function parseRoutes(text) {
  if (!text.trim()) {
    return [];
  }
  return text.split(",").map((item) => {
    const [name, cost = "0"] = item.split(":");
    const value = Number(cost);
    if (!name.trim() || !Number.isFinite(value) || value < 0) {
      throw new RangeError(`--routes items must be name:cost with cost >= 0, got ${JSON.stringify(item)}`);
    }
    return { name: name.trim(), cost: value };
  });
}

// ---------------------------------------------------------------- sessions

/**
 * Open queries waiting for feedback, by session id. At most `maxSessions`
 * are kept: a new one beyond that evicts the oldest, and one older than
 * `ttlMs` expires. An evicted or expired session's trajectory is never
 * ended, so it teaches nothing; the engine drops it once
 * `max_active_trajectories` newer ones are open.
 */
class SessionStore {
  constructor(maxSessions, ttlMs, now = Date.now) {
    this.maxSessions = maxSessions;
    this.ttlMs = ttlMs;
    this.now = now;
    this.sessions = new Map();
    this.evicted = 0;
    this.expired = 0;
  }

  open(id, session) {
    this.sweep();
    // Re-inserting moves the id to the newest end of the Map's order.
    this.sessions.delete(id);
    this.sessions.set(id, { ...session, openedAt: this.now() });
    while (this.sessions.size > this.maxSessions) {
      const oldest = this.sessions.keys().next().value;
      this.sessions.delete(oldest);
      this.evicted += 1;
    }
  }

  take(id) {
    this.sweep();
    const session = this.sessions.get(id);
    this.sessions.delete(id);
    return session;
  }

  sweep() {
    const cutoff = this.now() - this.ttlMs;
    for (const [id, session] of this.sessions) {
      if (session.openedAt > cutoff) {
        break;
      }
      this.sessions.delete(id);
      this.expired += 1;
    }
  }

  stats() {
    this.sweep();
    return {
      open: this.sessions.size,
      max: this.maxSessions,
      ttl_ms: this.ttlMs,
      evicted: this.evicted,
      expired: this.expired,
    };
  }
}

// ---------------------------------------------------------------- HTTP helpers

/** An error that becomes a JSON response `{error}` with its status. */
class HttpError extends Error {
  constructor(status, message, headers = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

function sendJson(response, status, body, headers = {}) {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

/**
 * Read the request body, up to `limit` bytes. A larger body is read to its
 * end and discarded before the 413 reply: breaking off the read would close
 * the socket while the client is still sending, and the client would see a
 * reset connection instead of the reply. Node's requestTimeout bounds how
 * long a client can keep sending.
 */
function readBody(request, limit) {
  const declared = Number(request.headers["content-length"] ?? "NaN");
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    request.on("data", (chunk) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
      }
    });
    request.on("end", () => {
      if (declared > limit || size > limit) {
        reject(new HttpError(413, `request body of ${Math.max(size, declared || 0)} bytes exceeds the limit of ${limit} bytes`));
      } else {
        resolve(Buffer.concat(chunks).toString("utf8"));
      }
    });
    request.on("error", reject);
  });
}

/** Read and parse a JSON object body of at most `limit` bytes. */
async function readJson(request, limit) {
  const text = await readBody(request, limit);
  if (!text.trim()) {
    throw new HttpError(400, "request body is empty; send a JSON object");
  }
  let body;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `request body is not valid JSON: ${error.message}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "request body must be a JSON object");
  }
  return body;
}

// ---------------------------------------------------------------- validation

function optionalSessionId(body) {
  if (body.sessionId === undefined) {
    return undefined;
  }
  return sessionId(body);
}

function sessionId(body) {
  const value = body.sessionId;
  if (value === undefined) {
    throw new HttpError(400, "field sessionId is required");
  }
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_SESSION_ID_LENGTH) {
    throw new HttpError(400, `field sessionId must be a string of 1 to ${MAX_SESSION_ID_LENGTH} characters`);
  }
  return value;
}

function queryEmbeddingInput(body, dim) {
  const hasText = body.text !== undefined;
  const hasEmbedding = body.embedding !== undefined;
  if (hasText === hasEmbedding) {
    throw new HttpError(400, "exactly one of the fields text and embedding is required");
  }
  if (hasText) {
    if (typeof body.text !== "string" || body.text.trim() === "" || body.text.length > MAX_TEXT_LENGTH) {
      throw new HttpError(400, `field text must be a non-empty string of at most ${MAX_TEXT_LENGTH} characters`);
    }
    return { text: body.text };
  }
  return { embedding: finiteVector(body.embedding, "embedding", dim) };
}

/** Read the optional response that served the query, as text or as an embedding. */
function responseInput(body, dim) {
  const hasText = body.response !== undefined;
  const hasEmbedding = body.responseEmbedding !== undefined;
  if (hasText && hasEmbedding) {
    throw new HttpError(400, "give only one of the fields response and responseEmbedding");
  }
  if (hasText) {
    if (typeof body.response !== "string" || body.response.trim() === "" || body.response.length > MAX_TEXT_LENGTH) {
      throw new HttpError(400, `field response must be a non-empty string of at most ${MAX_TEXT_LENGTH} characters`);
    }
    return { text: body.response };
  }
  if (hasEmbedding) {
    return { embedding: finiteVector(body.responseEmbedding, "responseEmbedding", dim) };
  }
  return null;
}

function finiteVector(value, field, dim) {
  if (!Array.isArray(value) || value.length !== dim) {
    throw new HttpError(400, `field ${field} must be an array of ${dim} numbers`);
  }
  const index = value.findIndex((item) => typeof item !== "number" || !Number.isFinite(item));
  if (index >= 0) {
    throw new HttpError(400, `field ${field}[${index}] must be a finite number, got ${JSON.stringify(value[index])}`);
  }
  return Float32Array.from(value);
}

function patternCount(body) {
  if (body.k === undefined) {
    return 3;
  }
  if (!Number.isInteger(body.k) || body.k < 1 || body.k > MAX_PATTERNS) {
    throw new HttpError(400, `field k must be an integer in [1, ${MAX_PATTERNS}]`);
  }
  return body.k;
}

function feedbackQuality(body) {
  if (body.quality !== undefined && body.helpful !== undefined) {
    throw new HttpError(400, "give only one of the fields quality and helpful");
  }
  if (body.quality !== undefined) {
    if (typeof body.quality !== "number" || !(body.quality >= 0 && body.quality <= 1)) {
      throw new HttpError(400, "field quality must be a number in [0, 1]");
    }
    return body.quality;
  }
  if (body.helpful !== undefined) {
    if (typeof body.helpful !== "boolean") {
      throw new HttpError(400, "field helpful must be true or false");
    }
    return body.helpful ? 1 : 0;
  }
  throw new HttpError(400, "field quality (a number in [0, 1]) or helpful (a boolean) is required");
}

// ---------------------------------------------------------------- service

function summarisePattern(pattern) {
  return {
    id: pattern.id,
    similarity: pattern.similarity,
    avg_quality: pattern.avg_quality,
    cluster_size: pattern.cluster_size,
    pattern_type: pattern.pattern_type,
    route_stats: pattern.route_stats,
  };
}

function summariseDecision(decision) {
  return {
    model: decision.model,
    model_index: decision.model_index,
    probability: decision.probability,
    explored: decision.explored,
    scores: decision.scores,
  };
}

/** The request handlers, over one engine, an optional router and the session store. */
export class SonaService {
  constructor({ engine, router, sessions, maxBodyBytes, log }) {
    this.engine = engine;
    this.router = router;
    this.sessions = sessions;
    this.maxBodyBytes = maxBodyBytes;
    this.log = log;
    this.routes = {
      "POST /api/query": (request) => this.query(request),
      "POST /api/feedback": (request) => this.feedback(request),
      "POST /api/learn": () => this.learn(),
      "GET /api/stats": () => this.stats(),
      "GET /health": () => ({ status: "ok" }),
    };
  }

  async query(request) {
    const body = await readJson(request, this.maxBodyBytes);
    const input = queryEmbeddingInput(body, this.engine.embeddingDim);
    const k = patternCount(body);
    const id = optionalSessionId(body) ?? randomUUID();

    const embedding = input.embedding ?? (await this.engine.embed(input.text));
    const trajectoryId = await this.engine.beginTrajectory(embedding);
    const adapted = await this.engine.transform(embedding);
    const patterns = await this.engine.findPatterns(embedding, k);

    let route = null;
    if (this.router) {
      const decision = await this.router.route(embedding);
      await this.engine.setTrajectoryRoute(trajectoryId, decision.model);
      route = summariseDecision(decision);
    }

    this.sessions.open(id, { trajectoryId, embedding, model: route?.model ?? null });
    return {
      sessionId: id,
      trajectoryId,
      embedding: Array.from(adapted),
      patterns: patterns.map(summarisePattern),
      route,
    };
  }

  async feedback(request) {
    const body = await readJson(request, this.maxBodyBytes);
    const id = sessionId(body);
    const quality = feedbackQuality(body);
    const response = responseInput(body, this.engine.hiddenDim);

    const session = this.sessions.take(id);
    if (!session) {
      throw new HttpError(404, `unknown sessionId ${JSON.stringify(id)}: it never sent a query, already got feedback, or expired`);
    }

    try {
      if (response) {
        // The response's embedding is the step's activations: MicroLoRA pulls
        // the query's representation toward responses rated above average
        // and away from those rated below.
        const activations = response.embedding ?? (await this.engine.embed(response.text));
        await this.engine.addTrajectoryStep(session.trajectoryId, activations, [1], quality);
      }
      await this.engine.endTrajectory(session.trajectoryId, quality);
    } catch (error) {
      if (error instanceof PythonKeyError) {
        throw new HttpError(
          404,
          `trajectory ${session.trajectoryId} of session ${JSON.stringify(id)} expired in the engine ` +
            "(more than max_active_trajectories queries are waiting for feedback)",
        );
      }
      throw error;
    }
    if (this.router && session.model !== null) {
      await this.router.recordOutcome(session.embedding, session.model, quality);
    }
    return { sessionId: id, trajectoryId: session.trajectoryId, quality, learned: true };
  }

  async learn() {
    const engine = await this.engine.forceLearn();
    const router = this.router ? await this.router.tick() : null;
    return { engine, router };
  }

  async stats() {
    return {
      engine: await this.engine.stats(),
      router: this.router ? await this.router.stats() : null,
      sessions: this.sessions.stats(),
    };
  }

  /** node:http request listener. */
  async handle(request, response) {
    const path = new URL(request.url, `http://${HOST}`).pathname;
    const handler = this.routes[`${request.method} ${path}`];
    try {
      if (!handler) {
        throw this.notFound(request.method, path);
      }
      sendJson(response, 200, await handler(request));
    } catch (error) {
      this.fail(response, error, `${request.method} ${path}`);
    }
  }

  notFound(method, path) {
    const allowed = Object.keys(this.routes)
      .filter((key) => key.endsWith(` ${path}`))
      .map((key) => key.split(" ")[0]);
    if (allowed.length) {
      return new HttpError(405, `method ${method} is not allowed on ${path}; use ${allowed.join(", ")}`, {
        Allow: allowed.join(", "),
      });
    }
    return new HttpError(404, `no endpoint ${path}`);
  }

  fail(response, error, label) {
    let status = 500;
    let message = "internal error; see the server log";
    let headers = {};
    if (error instanceof HttpError) {
      ({ status, message, headers } = error);
    } else if (error instanceof PythonError && ["ValueError", "TypeError", "KeyError"].includes(error.pythonType)) {
      // The engine rejected the input; its message names the parameter.
      status = 400;
      message = error.message;
    } else {
      this.log(`error: ${label} failed: ${error.stack ?? error}`);
    }
    if (response.headersSent) {
      response.destroy();
      return;
    }
    sendJson(response, status, { error: message }, headers);
  }
}

// ---------------------------------------------------------------- main

async function main() {
  const log = (line) => process.stderr.write(`sona-server: ${line}\n`);
  let options;
  try {
    options = readOptions(process.argv.slice(2), process.env);
  } catch (error) {
    log(`error: ${error.message}`);
    process.exit(2);
  }

  const runtimeOptions = { worker: false, indexURL: options.pyodideDir };
  const engine = await SonaEngine.create({
    ...runtimeOptions,
    preset: options.preset,
    hiddenDim: options.dim,
    embeddingDim: options.dim,
  });
  const router = options.routes.length
    ? await AdaptiveRouter.create({ ...runtimeOptions, models: options.routes, hiddenDim: options.dim, embeddingDim: options.dim })
    : null;
  const sessions = new SessionStore(options.maxSessions, options.sessionTtlMs);
  const service = new SonaService({ engine, router, sessions, maxBodyBytes: options.maxBodyBytes, log });

  const server = createServer((request, response) => {
    if (options.verbose) {
      log(`${request.method} ${request.url}`);
    }
    service.handle(request, response);
  });

  const stop = (signal) => {
    log(`stopping on ${signal}`);
    server.close(() => process.exit(0));
    // Keep-alive connections would hold close() open.
    server.closeAllConnections();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  server.listen(options.port, HOST, () => {
    const { port } = server.address();
    const routes = options.routes.map((route) => route.name).join(", ") || "none";
    // Tests and scripts wait for this line on stdout to learn the port.
    process.stdout.write(`sona-server listening on http://${HOST}:${port} (dim ${options.dim}, routes: ${routes})\n`);
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((error) => {
    process.stderr.write(`sona-server: error: failed to start: ${error.stack ?? error}\n`);
    process.exit(1);
  });
}
