"""Write docs/configuration.md from SonaConfig's fields, help texts and presets.

Run after changing sona_web/config.py; tests/test_docs.py fails while the doc
and the dataclass disagree.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sona_web.config import PRESETS, SonaConfig  # noqa: E402

HEADER = """# Configuration

`SonaConfig` is a dataclass; `validate()` checks every field and raises
`TypeError` or `ValueError` naming the field, the rule and the value. The help
text below is the same as in each field's `metadata["help"]`. This page is
written by `build_scripts/write_config_doc.py`.

## Fields

| field | type | default | effect |
|---|---|---|---|
"""

MIDDLE = """
A learning rate of 0, `ewc_lambda=0` or `pattern_clusters=0` switches the
matching component off; that is how the ablations in docs/benchmarks.md run.
`base_lora_rank` must not exceed `hidden_dim`.

## Presets

`SonaConfig.default()`, `max_throughput()`, `max_quality()`,
`edge_deployment()`, `batch_processing()`, or `SonaConfig.preset(name)`. Each
accepts field overrides as keywords, for example
`SonaConfig.edge_deployment(seed=3)`.

| preset | changes from the defaults |
|---|---|
"""


def render() -> str:
    fields = [
        f"| `{item.name}` | {item.type} | `{item.default!r}` | {item.metadata['help']} |"
        for item in dataclasses.fields(SonaConfig)
    ]
    presets = []
    for name, overrides in PRESETS.items():
        changes = ", ".join(f"`{key}={value!r}`" for key, value in overrides.items()) or "the defaults above"
        presets.append(f"| `{name}` | {changes} |")
    return HEADER + "\n".join(fields) + "\n" + MIDDLE + "\n".join(presets) + "\n"


if __name__ == "__main__":
    (ROOT / "docs" / "configuration.md").write_text(render())
