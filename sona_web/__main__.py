"""``python -m sona_web demo|bench [options]``: run the learning demo or the engine benchmark."""

from __future__ import annotations

import sys

__all__ = ["main"]

_USAGE = "usage: python -m sona_web {demo,bench} [options]; add --help after the command for its options"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("demo", "bench"):
        print(_USAGE, file=sys.stderr)
        return 2
    if argv[0] == "demo":
        from .demo import main as command
    else:
        from .bench import main as command
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
