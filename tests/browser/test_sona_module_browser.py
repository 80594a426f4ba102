"""web/sona.js in Chromium: the engine in a module Web Worker, served from 127.0.0.1."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

# Deterministic unit vectors for page scripts (Park-Miller generator), shared
# by the scenarios below through string concatenation.
VECTORS_JS = """
const makeSampler = (seed, dim) => {
  let state = seed;
  const uniform = () => { state = (state * 16807) % 2147483647; return state / 2147483647 - 0.5; };
  const normalise = (v) => { const n = Math.hypot(...v); return v.map((x) => x / n); };
  return {
    centre: () => normalise(Float32Array.from({ length: dim }, uniform)),
    near: (c, spread) => normalise(c.map((x) => x + spread * uniform())),
  };
};
const maxAbsDiff = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
"""


def evaluate(page, body: str, arg=None):
    """Run ``body`` (the inside of an async function of ``arg``) with sona.js imported as ``sona``."""
    script = (
        "async (arg) => {\n"
        "const sona = await import('/sona.js');\n"
        + VECTORS_JS
        + body
        + "\n}"
    )
    return page.evaluate(script, arg)


def copy_site_without(site_dir: Path, target: Path, missing: str) -> Path:
    """Copy the site (hard links where possible) leaving out files matching ``missing``."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(site_dir, target, copy_function=link_or_copy)
    removed = list(target.glob(missing))
    assert removed, f"nothing in {target} matches {missing}"
    for path in removed:
        path.unlink()
    return target


def test_learning_scenario_in_worker(page, blank_page_url, request_log):
    page.goto(blank_page_url)

    result = evaluate(page, """
      const progress = [];
      const engine = await sona.SonaEngine.create({
        hiddenDim: 32, embedding_dim: 32, microLoraLr: 0.1, seed: 5,
        onProgress: (event) => progress.push(event.phase),
      });
      const sampler = makeSampler(99, 32);
      const a = sampler.centre(), b = sampler.centre();
      const responseA = sampler.centre(), responseB = sampler.centre();
      const probe = sampler.near(a, 0.1);
      const untrained = await engine.applyMicroLora(probe);
      for (let i = 0; i < 40; i++) {
        const inA = i % 2 === 0;
        const route = i % 4 < 2 ? "concise" : "detailed";
        const good = (route === "concise") === inA;
        const q = sampler.near(inA ? a : b, 0.2);
        const id = await engine.beginTrajectory(q);
        await engine.addStep(id, sampler.near(inA ? responseA : responseB, 0.1), [1], good ? 1 : 0);
        await engine.setTrajectoryRoute(id, route);
        await engine.endTrajectory(id, good ? 1 : 0);
      }
      const trained = await engine.applyMicroLora(probe);
      const patternsBefore = await engine.findPatterns(probe, 3);
      const summary = await engine.forceLearn();
      const patterns = await engine.find_patterns(probe, 3);
      return {
        inWorker: engine.runtime.inWorker,
        progress,
        identity: maxAbsDiff(untrained, probe),
        change: maxAbsDiff(trained, untrained),
        outputType: trained.constructor.name,
        patternsBefore: patternsBefore.length,
        summaryPatterns: summary.patterns,
        patterns: patterns.length,
        centroidType: patterns[0].centroid.constructor.name,
        routes: Object.keys(patterns[0].route_stats).sort(),
        predictedA: await engine.predictQuality(sampler.near(a, 0.1)),
      };
    """)

    assert result["inWorker"] is True
    assert result["progress"] == ["pyodide", "numpy", "sona-web", "ready"]
    assert result["identity"] == 0
    assert result["change"] > 1e-4
    assert result["outputType"] == "Float32Array"
    assert result["patternsBefore"] == 0
    assert result["summaryPatterns"] > 0
    assert result["patterns"] > 0
    assert result["centroidType"] == "Float32Array"
    assert result["routes"] == ["concise", "detailed"]
    assert result["predictedA"]["concise"] > result["predictedA"]["detailed"]

    # The worker's own fetches are recorded too, and every one stayed local.
    assert any(url.endswith("/pyodide/pyodide.asm.wasm") for url in request_log)
    assert any(url.endswith(".whl") and "sona_web" in url for url in request_log)
    request_log.assert_only_local()


def test_python_errors_become_typed_errors(page, blank_page_url):
    page.goto(blank_page_url)

    errors = evaluate(page, """
      const engine = await sona.SonaEngine.create({ hiddenDim: 16, embeddingDim: 16 });
      const capture = async (promise) => {
        try { await promise; return null; } catch (error) {
          return {
            name: error.name, pythonType: error.pythonType ?? null, message: error.message,
            isError: error instanceof Error, isPython: error instanceof sona.PythonError,
            isValueError: error instanceof sona.PythonValueError,
            isKeyError: error instanceof sona.PythonKeyError,
            hasTraceback: (error.pythonStack ?? "").includes("Traceback"),
          };
        }
      };
      return {
        dimension: await capture(engine.applyMicroLora(new Float32Array(17))),
        trajectory: await capture(engine.endTrajectory(123456, 0.5)),
        route: await capture(engine.setTrajectoryRoute(await engine.beginTrajectory(new Float32Array(16).fill(0.25)), "")),
        pageSide: await capture(engine.applyMicroLora("not a vector")),
      };
    """)

    dimension = errors["dimension"]
    assert dimension["name"] == "PythonValueError"
    assert dimension["pythonType"] == "ValueError"
    assert dimension["message"] == "x must have shape (16,) or (n, 16), got (17,)"
    assert dimension["isError"] and dimension["isPython"] and dimension["isValueError"]
    assert dimension["hasTraceback"]

    trajectory = errors["trajectory"]
    assert trajectory["pythonType"] == "KeyError"
    assert trajectory["isKeyError"]
    assert trajectory["message"].startswith("unknown trajectory_id 123456")

    assert errors["route"]["pythonType"] == "ValueError"
    assert "route" in errors["route"]["message"]

    # A non-vector is rejected on the page before any message is sent.
    assert errors["pageSide"]["name"] == "TypeError"
    assert errors["pageSide"]["message"] == "x must be a Float32Array or an array of numbers, got String"


def test_memory_flat_over_10000_calls(page, blank_page_url):
    page.goto(blank_page_url)

    memory = evaluate(page, """
      const engine = await sona.SonaEngine.create({ hiddenDim: 256, debug: true });
      const x = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i));
      const batch = new Float32Array(100 * 256).fill(0.01);
      // Warm-up, so caches and pools that fill once are not counted as leaks.
      for (let i = 0; i < 300; i++) await engine.applyMicroLora(x);
      await engine.applyMicroLoraBatch(batch, 100);
      const before = await engine.debugMemory();
      for (let i = 0; i < 10000; i++) await engine.applyMicroLora(x);
      for (let i = 0; i < 100; i++) await engine.applyMicroLoraBatch(batch, 100);
      const after = await engine.debugMemory();
      return { before, after };
    """)

    before, after = memory["before"], memory["after"]
    assert before["liveProxies"] is not None
    assert after["liveProxies"] == before["liveProxies"]
    assert after["hiwireRefs"] == before["hiwireRefs"]
    assert after["heapBytes"] == before["heapBytes"]
    # gc-tracked objects drift by a few as caches settle; one leaked object
    # per call would add 10,000.
    assert abs(after["pythonObjects"] - before["pythonObjects"]) < 200


def test_batch_matches_single_calls(page, blank_page_url):
    page.goto(blank_page_url)

    result = evaluate(page, """
      const engine = await sona.SonaEngine.create({ hiddenDim: 8, embeddingDim: 8, microLoraLr: 0.5 });
      const q = Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0]);
      const id = await engine.beginTrajectory(q);
      // A step whose activations differ from the query gives MicroLoRA a target.
      await engine.addTrajectoryStep(id, Float32Array.from([0, 1, 0, 0, 0, 0, 0, 0]), [1], 1);
      await engine.setTrajectoryRoute(id, "r");
      await engine.endTrajectory(id, 1);
      const rows = [Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [8, 7, 6, 5, 4, 3, 2, 1]];
      const singles = [await engine.applyMicroLora(rows[0]), await engine.applyMicroLora(rows[1])];
      const fromList = await engine.applyMicroLoraBatch(rows);
      const flat = Float32Array.from([...rows[0], ...rows[1]]);
      const fromFlat = await engine.applyMicroLoraBatch(flat, 2);
      let mismatch = null;
      try { await engine.applyMicroLoraBatch(flat, 3); } catch (error) { mismatch = error.message; }
      return {
        length: fromFlat.length,
        listVsSingle: Math.max(maxAbsDiff(fromList.subarray(0, 8), singles[0]), maxAbsDiff(fromList.subarray(8), singles[1])),
        flatVsList: maxAbsDiff(fromFlat, fromList),
        adapted: maxAbsDiff(singles[0], rows[0]),
        callerArrayIntact: flat.length,
        mismatch,
      };
    """)

    assert result["length"] == 16
    assert result["listVsSingle"] == 0
    assert result["flatVsList"] == 0
    assert result["adapted"] > 0
    # The caller's own array is copied, never detached by the transfer.
    assert result["callerArrayIntact"] == 16
    assert result["mismatch"] == "data has 16 values, which is not a multiple of n=3"


def test_state_round_trip(page, blank_page_url):
    page.goto(blank_page_url)

    result = evaluate(page, """
      const sampler = makeSampler(7, 16);
      const engine = await sona.SonaEngine.create({ hiddenDim: 16, embeddingDim: 16, seed: 1 });
      const c = sampler.centre();
      for (let i = 0; i < 20; i++) {
        const id = await engine.beginTrajectory(sampler.near(c, 0.3));
        await engine.setTrajectoryRoute(id, i % 2 ? "a" : "b");
        await engine.endTrajectory(id, i % 2);
      }
      await engine.forceLearn();
      const probe = sampler.near(c, 0.1);
      const expected = await engine.transform(probe);
      const state = await engine.saveState();

      const restored = await sona.SonaEngine.fromState(state);
      const other = await sona.SonaEngine.create({ hiddenDim: 16, embeddingDim: 16, seed: 1 });
      const otherBefore = await other.transform(probe);
      await other.load_state(state.buffer);
      return {
        stateType: state.constructor.name,
        stateBytes: state.length,
        restored: maxAbsDiff(await restored.transform(probe), expected),
        before: maxAbsDiff(otherBefore, expected),
        after: maxAbsDiff(await other.transform(probe), expected),
        patterns: (await restored.findPatterns(probe, 2)).length,
        recorded: (await restored.stats()).trajectories_recorded,
      };
    """)

    assert result["stateType"] == "Uint8Array"
    assert result["stateBytes"] > 0
    assert result["restored"] == 0
    assert result["before"] > 0
    assert result["after"] == 0
    assert result["patterns"] > 0
    assert result["recorded"] == 20


def test_worker_keeps_page_responsive(page, blank_page_url):
    page.goto(blank_page_url)

    ticks = evaluate(page, """
      const texts = Array.from({ length: 3000 }, (_, i) => `query number ${i} about topic ${i % 17}`);
      const during = async (engine) => {
        let count = 0;
        const timer = setInterval(() => { count += 1; }, 5);
        await engine.embed(texts);
        clearInterval(timer);
        return count;
      };
      const worker = await sona.SonaEngine.create({ hiddenDim: 64, embeddingDim: 64 });
      const local = await sona.SonaEngine.create({ hiddenDim: 64, embeddingDim: 64, worker: false });
      return { worker: await during(worker), local: await during(local), localInWorker: local.runtime.inWorker };
    """)

    assert ticks["localInWorker"] is False
    # In-thread, the long Python call blocks the page, so no timer fires.
    assert ticks["local"] == 0
    assert ticks["worker"] > 0


def test_in_thread_mode_matches_worker(page, blank_page_url):
    page.goto(blank_page_url)

    result = evaluate(page, """
      const run = async (worker) => {
        const engine = await sona.SonaEngine.create({ hiddenDim: 8, embeddingDim: 8, seed: 3, worker });
        const q = Float32Array.from([0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0]);
        const id = await engine.begin_trajectory(q);
        await engine.add_step(id, Float32Array.from([0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5]), [1], 1);
        await engine.set_trajectory_route(id, "r");
        await engine.end_trajectory(id, 1);
        return { input: q, output: await engine.apply_micro_lora(q) };
      };
      const inWorker = await run(true), inThread = await run(false);
      return {
        difference: maxAbsDiff(inWorker.output, inThread.output),
        adapted: maxAbsDiff(inWorker.output, inWorker.input),
      };
    """)

    # Equal outputs mean something only if learning changed them.
    assert result["adapted"] > 0
    assert result["difference"] == 0


def test_router_in_worker(page, blank_page_url):
    page.goto(blank_page_url)

    result = evaluate(page, """
      const sampler = makeSampler(3, 16);
      const router = await sona.AdaptiveRouter.create({
        models: [{ name: "large", cost: 1 }, { name: "small", cost: 0 }], seed: 2,
        hiddenDim: 16, embeddingDim: 16,
      });
      const c = sampler.centre();
      for (let i = 0; i < 30; i++) {
        const q = sampler.near(c, 0.2);
        await router.recordOutcome(q, "small", 1);
        await router.record_outcome(q, 0, 1);
      }
      const decision = await router.route(sampler.near(c, 0.1));
      const copy = await sona.AdaptiveRouter.fromState(await router.saveState());
      let unknown = null;
      try { await router.recordOutcome(c, "medium", 1); } catch (error) { unknown = [error.pythonType, error.message]; }
      return { decision, outcomes: (await copy.stats()).outcomes, unknown };
    """)

    large, small = result["decision"]["scores"]
    assert small > large
    assert result["decision"]["model"] in ("large", "small")
    assert result["outcomes"] == 60
    assert result["unknown"][0] == "KeyError"
    assert result["unknown"][1].startswith("unknown model 'medium'")


def test_missing_wheel_names_url(page, site_dir, serve_directory, tmp_path):
    broken = copy_site_without(site_dir, tmp_path / "site", "pyodide/sona_web-*.whl")
    wheel = next((site_dir / "pyodide").glob("sona_web-*.whl")).name

    with serve_directory(broken) as url:
        page.goto(url + "bridge-demo.html")
        page.wait_for_selector("#status.error")
        status = page.text_content("#status")
        outcome = evaluate(page, """
          const phases = [];
          try {
            await sona.SonaEngine.create({ hiddenDim: 8, onProgress: (e) => phases.push(e.phase) });
            return { phases, error: null };
          } catch (error) {
            return { phases, error: { name: error.name, message: error.message, url: error.url } };
          }
        """)

    assert f"{url}pyodide/{wheel}" in status
    assert outcome["error"]["name"] == "LoadError"
    assert outcome["error"]["url"] == f"{url}pyodide/{wheel}"
    assert outcome["error"]["message"].startswith(f"package sona-web could not be loaded from {url}pyodide/{wheel}")
    assert outcome["phases"] == ["pyodide", "numpy", "sona-web"]


def test_missing_worker_script_names_url(page, site_dir, serve_directory, tmp_path):
    broken = copy_site_without(site_dir, tmp_path / "site", "worker.js")

    with serve_directory(broken) as url:
        page.goto(url + "bridge-demo.html")
        page.wait_for_selector("#status.error")
        status = page.text_content("#status")

    assert f"worker script failed or crashed: {url}worker.js" in status


def test_demo_page_learns_from_thumbs(page, site_url):
    page.goto(site_url + "bridge-demo.html")
    page.wait_for_selector("#status:text-is('Ready')")

    estimates = []
    for index in range(6):
        page.click("#ask")
        page.wait_for_selector("#answer:not([hidden])")
        page.wait_for_selector("#thumbs-up:not([disabled])")
        style = page.text_content("#route")
        if style == "concise":
            page.click("#thumbs-up")
        else:
            page.click("#thumbs-down")
        # Trajectory ids count from 1, one per question.
        page.wait_for_selector(f"#status:has-text('for trajectory {index + 1}')")
        estimates.append(page.text_content("td[data-style='concise']"))

    page.click("#learn")
    page.wait_for_selector("#learned:has-text('patterns')")
    page.wait_for_selector("#patterns li")

    assert "6 new trajectories" in page.text_content("#learned")
    assert '"trajectories_recorded": 6' in page.text_content("#stats")
    # Every thumbs-up went to "concise", so its estimate ends above the neutral 0.5.
    assert float(estimates[-1]) > 0.5
