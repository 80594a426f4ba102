"""web/sona.js in Node 20: a learning scenario in-process, and clear load errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent
SCENARIO = NODE_DIR / "scenario.mjs"
LOAD_ERROR = NODE_DIR / "load_error.mjs"


@pytest.fixture(scope="module")
def scenario(run_node, pyodide_dir: Path) -> dict:
    return run_node(SCENARIO, str(pyodide_dir))


def copy_without(source: Path, target: Path, missing: str) -> Path:
    """Copy a Pyodide folder (hard links where possible) leaving out ``missing``."""
    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)
    for path in target.glob(missing):
        path.unlink()
    return target


def test_progress_reports_every_phase(scenario):
    phases = [event["phase"] for event in scenario["progress"]]
    assert phases == ["pyodide", "numpy", "sona-web", "ready"]
    assert [event["loaded"] for event in scenario["progress"]] == [0, 1, 2, 3]
    assert {event["total"] for event in scenario["progress"]} == {3}


def test_config_accepts_both_spellings(scenario):
    assert scenario["config"]["hidden_dim"] == 32
    assert scenario["config"]["embedding_dim"] == 32
    assert scenario["config"]["micro_lora_lr"] == pytest.approx(0.1)
    assert scenario["config"]["seed"] == 7


def test_untrained_micro_lora_is_identity(scenario):
    # lora_B starts at zero, so a fresh adapter returns its input exactly.
    assert scenario["untrainedEqualsInput"] == 0


def test_feedback_changes_micro_lora_output(scenario):
    assert scenario["outputType"] == "Float32Array"
    assert scenario["outputLength"] == 32
    assert scenario["microChange"] > 1e-4


def test_force_learn_creates_patterns(scenario):
    assert scenario["summary"]["new_trajectories"] == 60
    assert scenario["summary"]["patterns"] > 0
    assert scenario["patternCount"] > 0
    assert scenario["patternCentroidType"] == "Float32Array"
    assert scenario["patternRoutes"] == ["concise", "detailed"]


def test_learned_route_preferences(scenario):
    assert scenario["predictedA"]["concise"] > scenario["predictedA"]["detailed"]
    assert scenario["predictedB"]["detailed"] > scenario["predictedB"]["concise"]


def test_batch_matches_single_calls(scenario):
    assert scenario["batchLength"] == 64
    assert scenario["batchVsSingle"] == 0
    assert scenario["flatVsList"] == 0


def test_snake_case_alias_matches(scenario):
    assert scenario["snakeVsCamel"] == 0


def test_state_round_trip(scenario):
    assert scenario["stateType"] == "Uint8Array"
    assert scenario["stateBytes"] > 0
    assert scenario["restoredDiff"] == 0
    # The fresh engine differs before loading, so equality after it is the load's doing.
    assert scenario["freshDiffBeforeLoad"] > 0
    assert scenario["freshDiffAfterLoad"] == 0


def test_embed_returns_float32_rows(scenario):
    assert scenario["embeddedType"] == "Float32Array"
    assert scenario["embeddedLength"] == 32
    assert scenario["embeddedManyLengths"] == [32, 32]


@pytest.mark.parametrize(
    ("case", "name", "python_type", "fragment"),
    [
        ("badDimension", "PythonValueError", "ValueError", "got (33,)"),
        ("unknownTrajectory", "PythonKeyError", "KeyError", "unknown trajectory_id 999999"),
        ("badQuality", "PythonValueError", "ValueError", "quality must be <= 1.0, got 1.5"),
        ("badPreset", "PythonValueError", "ValueError", "unknown preset 'fastest'"),
        ("unknownOption", "PythonKeyError", "KeyError", "unknown config option 'hiddenDimension'"),
        ("badState", "PythonValueError", "ValueError", "state is truncated"),
    ],
)
def test_python_errors_arrive_typed(scenario, case, name, python_type, fragment):
    error = scenario["errors"][case]
    assert error is not None, f"{case} did not reject"
    assert error["name"] == name
    assert error["pythonType"] == python_type
    assert error["isPythonError"] and error["isError"]
    assert fragment in error["message"]
    # The message is the Python exception's text, not a traceback.
    assert "Traceback" not in error["message"]


def test_closed_engine_rejects_calls(scenario):
    error = scenario["errors"]["closed"]
    assert error["name"] == "SonaError"
    assert error["message"] == "SonaEngine is closed"


def test_router_learns_cheaper_model_suffices(scenario):
    large, small = scenario["decision"]["scores"]
    assert small > large
    assert 0 < scenario["decision"]["probability"] <= 1
    assert scenario["routerOutcomes"] == 80


def test_memory_report_fields(scenario):
    memory = scenario["memory"]
    assert memory["heapBytes"] > 16 * 2**20
    assert memory["pythonObjects"] > 0
    assert memory["handles"] == 4
    assert memory["liveProxies"] is None


def test_missing_wheel_names_file(run_node, pyodide_dir, tmp_path):
    broken = copy_without(pyodide_dir, tmp_path / "pyodide", "sona_web-*.whl")
    wheel = next(pyodide_dir.glob("sona_web-*.whl")).name

    outcome = run_node(LOAD_ERROR, str(broken))

    assert outcome["name"] == "LoadError"
    assert outcome["isLoadError"]
    assert f"package sona-web could not be loaded from file://{broken}/{wheel}" in outcome["message"]
    assert outcome["url"].endswith(wheel)
    # Pyodide 0.27.7 in Node would retry from its CDN; the bridge keeps it local.
    assert "cdn" not in outcome["message"].lower()
    assert outcome["phases"] == ["pyodide", "numpy", "sona-web"]


def test_wheel_listed_by_path_loads(run_node, pyodide_dir):
    wheel = next(pyodide_dir.glob("sona_web-*.whl"))

    outcome = run_node(LOAD_ERROR, str(pyodide_dir), json.dumps(["numpy", str(wheel)]))

    assert outcome["name"] is None, outcome["message"]
    assert outcome["adapted"] == 8
    assert outcome["phases"] == ["pyodide", "numpy", "sona-web", "ready"]


def test_missing_listed_wheel_names_path(run_node, pyodide_dir, tmp_path):
    missing = tmp_path / "sona_web-9.9.9-py3-none-any.whl"

    outcome = run_node(LOAD_ERROR, str(pyodide_dir), json.dumps(["numpy", str(missing)]))

    assert outcome["name"] == "LoadError"
    assert outcome["message"].startswith(f"package sona_web could not be loaded from {missing.as_uri()}")
    assert "ENOENT" in outcome["message"]


def test_invalid_packages_option(run_node, pyodide_dir):
    outcome = run_node(LOAD_ERROR, str(pyodide_dir), json.dumps([]))

    assert outcome["name"] == "TypeError"
    assert outcome["message"] == "packages must be a non-empty array of package names or wheel URLs, got []"
    assert outcome["phases"] == []


def test_missing_wasm_names_file(run_node, pyodide_dir, tmp_path):
    broken = copy_without(pyodide_dir, tmp_path / "pyodide", "pyodide.asm.wasm")

    outcome = run_node(LOAD_ERROR, str(broken))

    assert outcome["name"] == "LoadError"
    assert outcome["message"].startswith(f"Pyodide file not found: {broken}/pyodide.asm.wasm")
    assert outcome["phases"] == ["pyodide"]


def test_missing_folder_names_first_file(run_node, tmp_path):
    outcome = run_node(LOAD_ERROR, str(tmp_path / "nowhere"))

    assert outcome["name"] == "LoadError"
    assert f"{tmp_path / 'nowhere'}/pyodide.asm.js" in outcome["message"]
