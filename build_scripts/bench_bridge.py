"""Benchmark the JavaScript bridge in Node and in Chromium.

Usage: ``python build_scripts/bench_bridge.py [--site dist/site] [--pyodide dist/pyodide]
[--repeats 7] [--calls 2000] [--write-docs]``

Measures, as medians over ``--repeats`` runs timed with ``performance.now()``
(Python's ``timeit`` inside Pyodide):

- ``apply_micro_lora`` at 256 dimensions called inside Pyodide, in Node and
  in Chromium (target 15 µs);
- one ``applyMicroLora`` round trip page -> worker -> page in Chromium
  (target 200 µs), and the same call in-process in Node and in the page's
  own thread;
- ``applyMicroLoraBatch`` with 256 vectors per message, per vector;
- page ready (Pyodide, numpy and sona-web loaded, engine created) from a
  cold start in a fresh browser context, served from 127.0.0.1 (target 4 s).

The reference figure is the 45 µs that the Rust crate ruvector-sona states
for its MicroLoRA forward pass. Each row prints the time ratio ours /
reference (or ours / target where the crate has no figure). This is a
benchmark, not a test: it asserts nothing. ``--write-docs`` replaces the
"Browser and Node bridge" section of docs/benchmarks.md with the results.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

# Run as a script, this file's folder is first on sys.path.
from chromium import CHROMIUM_ARGS, CHROMIUM_PATH

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_PATH = REPO_ROOT / "docs" / "benchmarks.md"
SECTION_TITLE = "## Browser and Node bridge"


REFERENCE_FORWARD_US = 45.0
DIM = 256
BATCH = 256

# Python run inside Pyodide: median seconds per call of apply_micro_lora.
TIMEIT_PYTHON = """
import statistics, timeit
import numpy as np
from sona_web import SonaEngine

engine = SonaEngine(hidden_dim={dim})
x = np.random.default_rng(0).standard_normal({dim}).astype(np.float32)
timer = timeit.Timer(lambda: engine.apply_micro_lora(x))
timer.timeit(number=200)
statistics.median(t / {calls} for t in timer.repeat(repeat={repeats}, number={calls}))
"""

# Shared by Node and the page: timing loops over the bridge.
BRIDGE_LOOPS_JS = """
const median = (values) => { const s = [...values].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
async function timeCalls(engine, calls, repeats) {
  const x = Float32Array.from({ length: DIM }, (_, i) => Math.sin(i));
  for (let i = 0; i < 300; i++) await engine.applyMicroLora(x);
  const runs = [];
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    for (let i = 0; i < calls; i++) await engine.applyMicroLora(x);
    runs.push(((performance.now() - start) * 1000) / calls);
  }
  return median(runs);
}
async function timeBatch(engine, batches, repeats) {
  const data = Float32Array.from({ length: BATCH * DIM }, (_, i) => Math.cos(i));
  for (let i = 0; i < 5; i++) await engine.applyMicroLoraBatch(data, BATCH);
  const runs = [];
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    for (let i = 0; i < batches; i++) await engine.applyMicroLoraBatch(data, BATCH);
    runs.push(((performance.now() - start) * 1000) / (batches * BATCH));
  }
  return median(runs);
}
"""

NODE_SCRIPT = """
const [sonaURL, pyodideDir, calls, repeats, timeitCode] = process.argv.slice(1);
const DIM = %(dim)d, BATCH = %(batch)d;
%(loops)s
const { SonaEngine } = await import(sonaURL);
const start = performance.now();
const engine = await SonaEngine.create({ hiddenDim: DIM, indexURL: pyodideDir });
const readyMs = performance.now() - start;
const callUs = await timeCalls(engine, Number(calls), Number(repeats));
const batchUs = await timeBatch(engine, Math.max(1, Math.floor(Number(calls) / 50)), Number(repeats));

const { loadPyodide } = await import(new URL("pyodide.mjs", "file://" + pyodideDir + "/").href);
const pyodide = await loadPyodide({ indexURL: pyodideDir + "/" });
await pyodide.loadPackage("sona-web");
const insideUs = pyodide.runPython(timeitCode) * 1e6;
console.log(JSON.stringify({ readyMs, callUs, batchUs, insideUs, node: process.version, pyodide: pyodide.version }));
"""

PAGE_BRIDGE_JS = """
async ({ calls, repeats }) => {
  const DIM = %(dim)d, BATCH = %(batch)d;
  %(loops)s
  const { SonaEngine } = await import("/sona.js");
  const worker = await SonaEngine.create({ hiddenDim: DIM });
  const local = await SonaEngine.create({ hiddenDim: DIM, worker: false });

  // A worker that only copies the vector back: the floor that postMessage
  // itself sets for any round trip, with no Pyodide involved.
  const echoSource = "onmessage = (e) => { const y = e.data.slice(); postMessage(y, [y.buffer]); };";
  const echo = new Worker(URL.createObjectURL(new Blob([echoSource], { type: "text/javascript" })));
  const echoEngine = {
    applyMicroLora: (x) => new Promise((resolve) => { echo.onmessage = (e) => resolve(e.data); echo.postMessage(x); }),
  };
  // The same host call in a loop inside a worker, with no message per call:
  // what the round trip costs beyond postMessage and thread wake-ups.
  const loopSource = `
    import { PyodideHost } from "${new URL("/host.js", location.href).href}";
    const DIM = ${DIM}, BATCH = ${BATCH};
    ${timeCalls.toString()}
    ${timeBatch.toString()}
    const median = ${median.toString()};
    onmessage = async (event) => {
      const { indexURL, calls, repeats } = event.data;
      const host = new PyodideHost();
      await host.handle({ type: "init", indexURL });
      const { handle } = await host.handle({ type: "create-engine", options: { hiddenDim: DIM } });
      const engine = {
        applyMicroLora: (x) => host.handle({ type: "call", handle, method: "apply_micro_lora", args: [x] }),
      };
      postMessage(await timeCalls(engine, calls, repeats));
    };`;
  const loop = new Worker(URL.createObjectURL(new Blob([loopSource], { type: "text/javascript" })), { type: "module" });
  const hostLoopUs = await new Promise((resolve) => {
    loop.onmessage = (event) => resolve(event.data);
    loop.postMessage({ indexURL: new URL("/pyodide/", location.href).href, calls, repeats });
  });
  loop.terminate();

  return {
    hostLoopUs,
    echoCallUs: await timeCalls(echoEngine, calls, repeats),
    workerCallUs: await timeCalls(worker, calls, repeats),
    workerBatchUs: await timeBatch(worker, Math.max(1, Math.floor(calls / 50)), repeats),
    localCallUs: await timeCalls(local, calls, repeats),
    inWorker: worker.runtime.inWorker,
  };
}
"""

PAGE_INSIDE_JS = """
async (code) => {
  const { loadPyodide } = await import("/pyodide/pyodide.mjs");
  const pyodide = await loadPyodide({ indexURL: new URL("/pyodide/", location.href).href });
  await pyodide.loadPackage("sona-web");
  return pyodide.runPython(code) * 1e6;
}
"""

PAGE_READY_JS = """
async () => {
  const { SonaEngine } = await import("/sona.js");
  const start = performance.now();
  await SonaEngine.create({ hiddenDim: 256 });
  // performance.now() counts from the navigation start of this page.
  return { sinceNavigationMs: performance.now(), createMs: performance.now() - start };
}
"""


def load_serve_site():
    spec = importlib.util.spec_from_file_location("serve_site", REPO_ROOT / "build_scripts" / "serve_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def run_node(pyodide_dir: Path, calls: int, repeats: int) -> dict:
    script = NODE_SCRIPT % {"dim": DIM, "batch": BATCH, "loops": BRIDGE_LOOPS_JS}
    timeit_code = TIMEIT_PYTHON.format(dim=DIM, calls=calls, repeats=repeats)
    sona_url = (REPO_ROOT / "web" / "sona.js").as_uri()
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script, sona_url, str(pyodide_dir), str(calls), str(repeats), timeit_code],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Node benchmark failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_chromium(site_dir: Path, calls: int, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    server = load_serve_site().create_server(site_dir, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    blank = base + "__bench__.html"

    def open_page(browser):
        context = browser.new_context()
        context.set_default_timeout(600_000)
        outside: list[str] = []
        context.on("request", lambda request: None if request.url.startswith(base) else outside.append(request.url))
        page = context.new_page()
        page.route(blank, lambda route: route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>bench</title>"))
        page.goto(blank)
        return context, page, outside

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
            ready = []
            for _ in range(repeats):
                context, page, outside = open_page(browser)
                ready.append(page.evaluate(PAGE_READY_JS))
                context.close()
                if outside:
                    raise RuntimeError(f"the page contacted hosts other than 127.0.0.1: {outside}")

            context, page, _ = open_page(browser)
            bridge = page.evaluate(
                PAGE_BRIDGE_JS % {"dim": DIM, "batch": BATCH, "loops": BRIDGE_LOOPS_JS},
                {"calls": calls, "repeats": repeats},
            )
            context.close()

            context, page, _ = open_page(browser)
            inside = page.evaluate(PAGE_INSIDE_JS, TIMEIT_PYTHON.format(dim=DIM, calls=calls, repeats=repeats))
            context.close()
            version = browser.version
            browser.close()
    finally:
        server.shutdown()
        server.server_close()

    return {
        **bridge,
        "insideUs": inside,
        "readySinceNavigationMs": median([item["sinceNavigationMs"] for item in ready]),
        "readyCreateMs": median([item["createMs"] for item in ready]),
        "chromium": version,
    }


def rows(node: dict, chromium: dict) -> list[tuple[str, str, float, str, float | None, str]]:
    """Return (measurement, where, value, unit, target, what the ratio compares)."""
    return [
        ("apply_micro_lora inside Pyodide, 256-d", "Node", node["insideUs"], "µs", 15.0, "reference"),
        ("apply_micro_lora inside Pyodide, 256-d", "Chromium", chromium["insideUs"], "µs", 15.0, "reference"),
        ("applyMicroLora round trip page -> worker -> page", "Chromium", chromium["workerCallUs"], "µs", 200.0, "reference"),
        ("postMessage echo round trip, no Pyodide (floor)", "Chromium", chromium["echoCallUs"], "µs", None, "reference"),
        ("the same host call in a loop inside the worker, no messages", "Chromium", chromium["hostLoopUs"], "µs", None, "reference"),
        ("applyMicroLora in the page's thread (worker: false)", "Chromium", chromium["localCallUs"], "µs", None, "reference"),
        ("applyMicroLora in-process", "Node", node["callUs"], "µs", None, "reference"),
        (f"applyMicroLoraBatch, {BATCH} vectors per message, per vector", "Chromium", chromium["workerBatchUs"], "µs", None, "reference"),
        (f"applyMicroLoraBatch, {BATCH} vectors per call, per vector", "Node", node["batchUs"], "µs", None, "reference"),
        ("page ready from cold start (since navigation)", "Chromium", chromium["readySinceNavigationMs"] / 1000, "s", 4.0, "target"),
        ("SonaEngine.create() from cold start", "Node", node["readyMs"] / 1000, "s", None, "none"),
    ]


def format_table(table) -> str:
    lines = [
        "| measurement | where | median | target | ours / reference (45 µs) or / target |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, where, value, unit, target, compare in table:
        target_text = "" if target is None else f"≤ {target:g} {unit}"
        if compare == "reference":
            ratio = f"{value / REFERENCE_FORWARD_US:.2f}"
        elif compare == "target" and target:
            ratio = f"{value / target:.2f} of target"
        else:
            ratio = ""
        figure = f"{value:.1f} {unit}" if unit == "µs" else f"{value:.2f} {unit}"
        lines.append(f"| {name} | {where} | {figure} | {target_text} | {ratio} |")
    return "\n".join(lines)


def machine_description(node: dict, chromium: dict) -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, load average {load} at the end; "
        f"Node {node['node']}, Chromium {chromium['chromium']} headless, Pyodide {node['pyodide']}"
    )


def write_docs(section: str) -> None:
    """Replace this script's section of docs/benchmarks.md, or append it; other sections stay as they are."""
    text = DOCS_PATH.read_text(encoding="utf-8") if DOCS_PATH.is_file() else "# Benchmarks\n"
    start = text.find(SECTION_TITLE)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION_TITLE))
        text = text[:start] + section + ("" if end < 0 else text[end:])
    DOCS_PATH.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=REPO_ROOT / "dist" / "site", help="built site folder (default: dist/site)")
    parser.add_argument("--pyodide", type=Path, default=REPO_ROOT / "dist" / "pyodide",
                        help="built Pyodide folder for Node (default: dist/pyodide)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure; the median is reported (default: 7)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed run (default: 2000)")
    parser.add_argument("--write-docs", action="store_true", help="replace the bridge section of docs/benchmarks.md")
    parser.add_argument("--note", default="", help="a remark about this run, added to the docs section (with --write-docs)")
    args = parser.parse_args(argv)

    for folder in (args.site, args.pyodide):
        if not folder.is_dir():
            print(f"bench_bridge: error: {folder} not found: run build_scripts/build_site.py", file=sys.stderr)
            return 1

    node = run_node(args.pyodide.resolve(), args.calls, args.repeats)
    chromium = run_chromium(args.site.resolve(), args.calls, args.repeats)
    table = format_table(rows(node, chromium))
    # The folders are left out: they are a build_site.py build of the same tree.
    command = f"python build_scripts/bench_bridge.py --repeats {args.repeats} --calls {args.calls}"

    print(table)
    print(f"\nmachine: {machine_description(node, chromium)}")

    if args.write_docs:
        section = (
            f"{SECTION_TITLE}\n\n"
            "Calls through `web/sona.js`, timed with `performance.now()` (Python's `timeit` inside Pyodide); "
            f"each figure is the median of {args.repeats} runs of {args.calls} calls (batches: {BATCH} vectors "
            "per message). The reference is the 45 µs that ruvector-sona states for its MicroLoRA forward pass; "
            "a ratio below 1 means less time than that. Page ready is measured in a fresh browser context "
            "(empty HTTP cache) from navigation start until `SonaEngine.create()` resolves, with the site "
            "served from 127.0.0.1.\n\n"
            f"{table}\n\n"
            f"Measured on {datetime.date.today().isoformat()}: {machine_description(node, chromium)}. "
            f"Command: `{command}`, on a `build_scripts/build_site.py` build of the same tree.\n"
            + (f"\n{args.note.strip()}\n" if args.note.strip() else "")
        )
        write_docs(section)
        print(f"wrote the bridge section of {DOCS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
