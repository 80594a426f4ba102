// A learning scenario through web/sona.js in Node, in-process. Prints one
// JSON object of observations; tests/node/test_node_module.py checks them.
//
//   node tests/node/scenario.mjs PYODIDE_DIR

import { AdaptiveRouter, PythonError, SonaEngine } from "../../web/sona.js";

const DIM = 32;
const [indexURL] = process.argv.slice(2);

/** Deterministic unit vectors around a centre (Park-Miller generator). */
function makeSampler(seed) {
  let state = seed;
  const uniform = () => {
    state = (state * 16807) % 2147483647;
    return state / 2147483647 - 0.5;
  };
  const normalise = (v) => {
    const norm = Math.hypot(...v);
    return v.map((value) => value / norm);
  };
  return {
    centre: () => normalise(Float32Array.from({ length: DIM }, uniform)),
    near: (centre, spread) => normalise(centre.map((value) => value + spread * uniform())),
  };
}

async function errorOf(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return {
      name: error.name,
      pythonType: error.pythonType ?? null,
      message: error.message,
      isPythonError: error instanceof PythonError,
      isError: error instanceof Error,
    };
  }
}

function maxAbsDiff(a, b) {
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i] - b[i]));
  }
  return max;
}

const progress = [];
const engine = await SonaEngine.create({
  hiddenDim: DIM,
  embedding_dim: DIM,
  preset: "default",
  microLoraLr: 0.1,
  seed: 7,
  indexURL,
  onProgress: (event) => progress.push(event),
});

const sampler = makeSampler(12345);
const clusterA = sampler.centre();
const clusterB = sampler.centre();
// What a good response to each cluster looks like; step activations near it
// give MicroLoRA a target to pull the query representation toward.
const responseA = sampler.centre();
const responseB = sampler.centre();
const probe = sampler.near(clusterA, 0.1);

const untrained = await engine.applyMicroLora(probe);

// Route "concise" pleases cluster A and "detailed" pleases cluster B.
for (let i = 0; i < 60; i++) {
  const inA = i % 2 === 0;
  const query = sampler.near(inA ? clusterA : clusterB, 0.2);
  const route = i % 4 < 2 ? "concise" : "detailed";
  const good = (route === "concise") === inA;
  const id = await engine.beginTrajectory(query);
  await engine.addTrajectoryStep(id, sampler.near(inA ? responseA : responseB, 0.1), [0.25, 0.75], good ? 1 : 0);
  await engine.setTrajectoryRoute(id, route);
  await engine.addTrajectoryContext(id, inA ? "topic-a" : "topic-b");
  await engine.endTrajectory(id, good ? 1 : 0);
}

const trained = await engine.applyMicroLora(probe);
const rowB = sampler.near(clusterB, 0.1);
const batch = await engine.applyMicroLoraBatch([probe, rowB]);
const flatBatch = await engine.applyMicroLoraBatch(Float32Array.from([...probe, ...rowB]), 2);
const singleB = await engine.applyMicroLora(rowB);
const snake = await engine.apply_micro_lora(Array.from(probe));

// forceLearn folds MicroLoRA into BaseLoRA, so from here on the engine's
// learning shows in transform() (the full adapted representation).
const summary = await engine.forceLearn();
const patterns = await engine.findPatterns(probe, 3);
const predictedA = await engine.predictQuality(sampler.near(clusterA, 0.1));
const predictedB = await engine.predictQuality(sampler.near(clusterB, 0.1));
const represented = await engine.transform(probe);

const state = await engine.saveState();
const restored = await SonaEngine.fromState(state, { indexURL });
const restoredOut = await restored.transform(probe);
const fresh = await SonaEngine.create({ hiddenDim: DIM, embeddingDim: DIM, seed: 7, indexURL });
const freshBefore = await fresh.transform(probe);
await fresh.loadState(state);
const freshAfter = await fresh.transform(probe);

const embedded = await engine.embed("book a table for two");
const embeddedMany = await engine.embed(["hello", "goodbye"]);

const errors = {
  badDimension: await errorOf(engine.applyMicroLora(new Float32Array(DIM + 1))),
  unknownTrajectory: await errorOf(engine.endTrajectory(999_999, 0.5)),
  badQuality: await errorOf(engine.end_trajectory(await engine.begin_trajectory(probe), 1.5)),
  badPreset: await errorOf(SonaEngine.create({ preset: "fastest", indexURL })),
  unknownOption: await errorOf(SonaEngine.create({ hiddenDimension: 8, indexURL })),
  badState: await errorOf(engine.loadState(new Uint8Array([1, 2, 3]))),
  closed: null,
};
await restored.close();
errors.closed = await errorOf(restored.applyMicroLora(probe));

const router = await AdaptiveRouter.create({
  models: [{ name: "large", cost: 1 }, { name: "small", cost: 0 }],
  seed: 3,
  hiddenDim: DIM,
  embeddingDim: DIM,
  indexURL,
});
for (let i = 0; i < 40; i++) {
  const inA = i % 2 === 0;
  const query = sampler.near(inA ? clusterA : clusterB, 0.2);
  // The small model satisfies cluster A; only the large one satisfies B.
  await router.recordOutcome(query, "small", inA ? 1 : 0);
  await router.record_outcome(query, 0, 1);
}
const decision = await router.route(probe);
const routerState = await router.saveState();
const routerCopy = await AdaptiveRouter.fromState(routerState, { indexURL });
const routerStats = await routerCopy.stats();

const memory = await engine.debugMemory();

console.log(
  JSON.stringify({
    progress,
    config: engine.config,
    untrainedEqualsInput: maxAbsDiff(untrained, probe),
    microChange: maxAbsDiff(trained, untrained),
    outputType: trained.constructor.name,
    outputLength: trained.length,
    summary,
    patternCount: patterns.length,
    patternCentroidType: patterns[0]?.centroid?.constructor?.name ?? null,
    patternRoutes: patterns[0] ? Object.keys(patterns[0].route_stats).sort() : [],
    predictedA,
    predictedB,
    batchLength: batch.length,
    batchVsSingle: Math.max(maxAbsDiff(batch.subarray(0, DIM), trained), maxAbsDiff(batch.subarray(DIM), singleB)),
    flatVsList: maxAbsDiff(flatBatch, batch),
    snakeVsCamel: maxAbsDiff(snake, trained),
    stateType: state.constructor.name,
    stateBytes: state.length,
    restoredDiff: maxAbsDiff(restoredOut, represented),
    freshDiffBeforeLoad: maxAbsDiff(freshBefore, represented),
    freshDiffAfterLoad: maxAbsDiff(freshAfter, represented),
    freshConfigSeed: fresh.config.seed,
    embeddedType: embedded.constructor.name,
    embeddedLength: embedded.length,
    embeddedManyLengths: embeddedMany.map((row) => row.length),
    errors,
    decision: { model: decision.model, scores: decision.scores, probability: decision.probability, explored: decision.explored },
    routerOutcomes: routerStats.outcomes,
    memory,
  }),
);
