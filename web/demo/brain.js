// The chat demo's learning side: a text embedder and an AdaptiveRouter over
// the response strategies, both living in the Pyodide worker.
//
// Routing, recording outcomes and saving go through the public sona.js API.
// The embedder and the router's background cycle have no bridge method, so
// they run as short Python snippets through RUN_PYTHON (demo/python.js) in
// the worker namespace "chat".

import { AdaptiveRouter, SonaError } from "../sona.js";
import { evalPython } from "./python.js";
import { STRATEGIES } from "./responder.js";

const NAMESPACE = "chat";

/** Run a consolidation cycle (`forceLearn`) after this many feedbacks. */
export const FORCE_LEARN_EVERY = 10;

/**
 * Text embedders the page can use. `hashed` is built into sona_web; the
 * others need model files under the site's models/ folder.
 */
export const EMBEDDERS = Object.freeze({
  hashed: {
    label: "Hashed n-grams (built in)",
    dim: 256,
    code: "from sona_web.embedders import get_embedder\nembedder = get_embedder('hashed', dim=256)",
  },
  wordllama: {
    label: "WordLlama (about 9 MB)",
    dim: 256,
    code:
      "from sona_web.embedders.wordllama import WordLlamaEmbedder\n" +
      "embedder = WordLlamaEmbedder.from_files(bytes(weights), bytes(tokenizer), bytes(manifest), dim=256)\n" +
      "del weights, tokenizer, manifest",
  },
  minilm: {
    label: "MiniLM-L6 (about 23 MB)",
    dim: 384,
    code:
      "from sona_web.embedders.minilm import MiniLMEmbedder\n" +
      "embedder = MiniLMEmbedder.from_files(bytes(weights), bytes(tokenizer), bytes(manifest))\n" +
      "del weights, tokenizer, manifest",
  },
});

/** Engine settings of the demo's router, beside its `embeddingDim`. */
const ROUTER_CONFIG = {
  hiddenDim: 256,
  // Enough for weeks of chatting, and it keeps a saved state small.
  trajectoryCapacity: 2000,
  // The page calls tick() every few seconds; a cycle runs at most this often.
  backgroundIntervalMs: 5000,
};

/** Fetch a model's manifest and files from `modelsURL`; resolves to `{weights, tokenizer, manifest}` bytes. */
async function fetchModelFiles(modelsURL, name) {
  const base = new URL(`${name}/`, modelsURL);
  const manifestBytes = await fetchBytes(new URL("manifest.json", base));
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  const files = manifest.files ?? {};
  if (!files.weights?.path || !files.tokenizer?.path) {
    throw new SonaError(`model manifest ${new URL("manifest.json", base)} lists no weights and tokenizer files`);
  }
  const [weights, tokenizer] = await Promise.all([
    fetchBytes(new URL(files.weights.path, base)),
    fetchBytes(new URL(files.tokenizer.path, base)),
  ]);
  return { weights, tokenizer, manifest: manifestBytes };
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) {
    throw new SonaError(`could not fetch ${url}: HTTP ${response.status}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}

/** Load embedder `name` into the worker namespace; rejects if its files are missing or invalid. */
export async function loadEmbedder(runtime, name, modelsURL) {
  const spec = EMBEDDERS[name];
  if (!spec) {
    throw new SonaError(`unknown embedder ${JSON.stringify(name)}; expected one of ${Object.keys(EMBEDDERS).join(", ")}`);
  }
  let values = {};
  let transfer = [];
  if (name !== "hashed") {
    if (!modelsURL) {
      throw new SonaError(`the ${name} embedder needs model files, and this site was built without models/`);
    }
    values = await fetchModelFiles(modelsURL, name);
    transfer = Object.values(values).map((bytes) => bytes.buffer);
  }
  await evalPython(runtime, `${spec.code}\nembedder.dim`, { namespace: NAMESPACE, values, transfer });
}

/** Drop centroids (hundreds of numbers each) from a decision's patterns; the page shows only their statistics. */
function slimDecision(decision) {
  return {
    ...decision,
    patterns: decision.patterns.map(({ centroid, ...rest }) => rest),
  };
}

export class ChatBrain {
  constructor(runtime, router, embedderName, initialState) {
    this.runtime = runtime;
    this.router = router;
    this.embedderName = embedderName;
    this.initialState = initialState;
    this.strategyNames = STRATEGIES.map((strategy) => strategy.name);
  }

  /** Load the embedder and create a fresh router over the strategies; `runtime` is a loaded SonaRuntime. */
  static async create({ runtime, embedder = "hashed", modelsURL = null }) {
    await loadEmbedder(runtime, embedder, modelsURL);
    const router = await AdaptiveRouter.create({
      runtime,
      models: STRATEGIES.map(({ name, cost }) => ({ name, cost })),
      seed: 0,
      embeddingDim: EMBEDDERS[embedder].dim,
      ...ROUTER_CONFIG,
    });
    const initialState = await router.saveState();
    return new ChatBrain(runtime, router, embedder, initialState);
  }

  get dim() {
    return EMBEDDERS[this.embedderName].dim;
  }

  python(code, values = {}) {
    return evalPython(this.runtime, code, { namespace: NAMESPACE, handles: { router: this.router }, values });
  }

  /** Embed one message; resolves to a Float32Array of `dim` values. */
  embed(text) {
    return this.python("embedder.embed([text])[0]", { text: String(text) });
  }

  /** Embed `text` and let the router choose a strategy; resolves to `{x, decision}`. */
  async decide(text) {
    const x = await this.embed(text);
    const decision = slimDecision(await this.router.route(x));
    return { x, decision };
  }

  /**
   * Record that `strategy` earned `quality` in [0, 1] for embedding `x`, and
   * run a consolidation cycle after every FORCE_LEARN_EVERY outcomes.
   * Resolves to `{outcomes, cycle}` (cycle is the summary, or null).
   */
  async learn(x, strategy, quality) {
    await this.router.recordOutcome(x, strategy, quality);
    const outcomes = await this.python("router.stats()['outcomes']");
    const cycle = outcomes % FORCE_LEARN_EVERY === 0 ? await this.python("router.engine.force_learn()") : null;
    return { outcomes, cycle };
  }

  /** Run a background cycle if the engine's interval has passed and there is new data; resolves to its summary or null. */
  tick() {
    return this.python("router.tick()");
  }

  stats() {
    return this.router.stats();
  }

  saveState() {
    return this.router.saveState();
  }

  /** Replace the router's state; rejects (state unchanged) if the bytes are not a valid state for this demo. */
  async loadState(bytes) {
    await this.validateState(bytes);
    await this.router.loadState(bytes);
  }

  /** Forget everything learned: back to the state the router had when created. */
  async reset() {
    await this.router.loadState(this.initialState);
  }

  /**
   * Check that `bytes` restore a router over this demo's strategies at this
   * embedder's dimension, in a scratch router so that nothing changes here.
   */
  async validateState(bytes) {
    const scratch = await AdaptiveRouter.fromState(bytes, { runtime: this.runtime });
    try {
      const stats = await scratch.stats();
      const models = Object.keys(stats.models);
      if (models.join(",") !== this.strategyNames.join(",")) {
        throw new SonaError(`the state routes between ${models.join(", ")}, but this chat uses ${this.strategyNames.join(", ")}`);
      }
      const dim = await evalPython(this.runtime, "scratch.engine.config.embedding_dim", {
        namespace: NAMESPACE,
        handles: { scratch },
      });
      if (dim !== this.dim) {
        throw new SonaError(`the state expects ${dim}-dimensional embeddings, but the ${this.embedderName} embedder gives ${this.dim}`);
      }
    } finally {
      await scratch.close();
    }
  }

  /**
   * Route `texts` on a copy of the current state, so that probing changes
   * nothing (routing advances the random generator and pattern access
   * counts). Resolves to one `{model, scores}` per text.
   */
  async probe(texts) {
    const copy = await AdaptiveRouter.fromState(await this.router.saveState(), { runtime: this.runtime });
    try {
      const results = [];
      for (const text of texts) {
        const decision = await copy.route(await this.embed(text));
        results.push({ model: decision.model, scores: decision.scores, explored: decision.explored });
      }
      return results;
    } finally {
      await copy.close();
    }
  }
}
