"""Run Python source sent by a page: the browser console and the chat demo's helper calls.

``web/python-runner.js`` calls :func:`run_code` and :func:`check_code` for
the ``RUN_PYTHON`` message. Each run executes in a named namespace (a dict
kept between runs), so a console session keeps its variables. Before each
run, the engines and routers created through the bridge are bound into the
namespace by handle, under names the page chooses. So ``router`` is the live
object even after the page has loaded a new state into that handle.

As in the interactive interpreter, when the last statement is an expression
its value is returned: as its ``repr`` for a console, or converted by the
bridge's ``to_plain`` for page code that needs the value itself. Standard
output and standard error are captured while the code runs. An exception
raised by the code is part of the result (its type, message and traceback
without this module's frames), because a console shows it like any output;
only invalid arguments to these functions produce an error envelope.
"""

from __future__ import annotations

import ast
import codeop
import contextlib
import io
import itertools
import linecache
import traceback
from typing import Any

from ._bridge import _REGISTRY, _envelope, _unwrap_js, to_plain

__all__ = ["MAX_OUTPUT_CHARS", "RESULT_MODES", "check_code", "get_namespace", "namespace_names", "run_code"]

# Captured output beyond this many characters is cut, so that a runaway
# print loop cannot build a message too large to post to the page.
MAX_OUTPUT_CHARS = 200_000
# Namespaces kept at once; the page uses one per console plus one of its own.
MAX_NAMESPACES = 16

RESULT_MODES = ("repr", "value", "none")

# Sources kept in linecache so that tracebacks show the lines of earlier
# runs, whose functions may still be called.
MAX_CACHED_SOURCES = 256

_FILENAME = "<console>"
_NAMESPACES: dict[str, dict[str, Any]] = {}
_RUN_NUMBERS = itertools.count(1)


class _CappedText(io.StringIO):
    """A text buffer that stops storing after MAX_OUTPUT_CHARS and remembers that it did."""

    truncated = False

    def write(self, text: str) -> int:
        room = MAX_OUTPUT_CHARS - self.tell()
        if room <= 0:
            self.truncated = True
            return len(text)
        if len(text) > room:
            self.truncated = True
        super().write(text[:room])
        return len(text)

    def text(self) -> str:
        value = self.getvalue()
        return value + "\n[output truncated]\n" if self.truncated else value


def _namespace(name: Any, reset: bool) -> dict[str, Any]:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"namespace must be a Python identifier, got {name!r}")
    if reset:
        _NAMESPACES.pop(name, None)
    if name not in _NAMESPACES and len(_NAMESPACES) >= MAX_NAMESPACES:
        raise ValueError(
            f"too many namespaces: {len(_NAMESPACES)} exist (the maximum); reuse one of {sorted(_NAMESPACES)}"
        )
    return _NAMESPACES.setdefault(name, {"__name__": "__console__", "__builtins__": __builtins__})


def _bindings(handles: Any, values: Any) -> dict[str, Any]:
    """Resolve handle numbers to their objects and convert JavaScript values."""
    bound: dict[str, Any] = {}
    for kind, mapping in (("handles", handles), ("values", values)):
        mapping = _unwrap_js(mapping) if mapping is not None else {}
        if not isinstance(mapping, dict):
            raise TypeError(f"{kind} must be an object of name: value pairs, got {type(mapping).__name__}")
        for name, item in mapping.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"{kind} name must be a Python identifier, got {name!r}")
            bound[name] = _REGISTRY.get(item)[1] if kind == "handles" else _unwrap_js(item)
    return bound


def _remember_source(code: str) -> str:
    """Register ``code`` in linecache under a new file name and return the name."""
    number = next(_RUN_NUMBERS)
    filename = f"<console-{number}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    linecache.cache.pop(f"<console-{number - MAX_CACHED_SOURCES}>", None)
    return filename


def _split_last_expression(code: str, filename: str) -> tuple[ast.Module, ast.Expression | None]:
    tree = ast.parse(code, filename=filename, mode="exec")
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body.pop()
        return tree, ast.Expression(body=last.value)
    return tree, None


def _describe_exception(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, SyntaxError):
        # Raised while parsing, so every frame belongs to this module or ast.
        lines = traceback.format_exception_only(type(exc), exc)
    else:
        # The first frame is this module's exec or eval call, which is of no
        # use to the reader of a traceback of their own code.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        lines = traceback.format_exception(type(exc), exc, tb)
    return {"type": type(exc).__name__, "message": str(exc), "traceback": "".join(lines)}


def _execute(code: str, namespace: dict[str, Any], result: str) -> dict[str, Any]:
    stdout, stderr = _CappedText(), _CappedText()
    outcome: dict[str, Any] = {"repr": None, "value": None, "error": None}
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            filename = _remember_source(code)
            body, last = _split_last_expression(code, filename)
            exec(compile(body, filename, "exec"), namespace)
            if last is not None:
                value = eval(compile(last, filename, "eval"), namespace)
                if value is not None:
                    namespace["_"] = value
                    if result == "repr":
                        outcome["repr"] = repr(value)
                    elif result == "value":
                        outcome["value"] = to_plain(value)
        except Exception as exc:  # the user's code may raise anything; the console shows it
            outcome["error"] = _describe_exception(exc)
    outcome["stdout"] = stdout.text()
    outcome["stderr"] = stderr.text()
    return outcome


def _run(code: Any, namespace: Any, handles: Any, values: Any, result: Any, reset: Any) -> dict[str, Any]:
    code = _unwrap_js(code)
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    if result not in RESULT_MODES:
        raise ValueError(f"result must be one of {RESULT_MODES}, got {result!r}")
    bound = _bindings(handles, values)
    scope = _namespace(namespace, bool(reset))
    scope.update(bound)
    return _execute(code, scope, result)


def run_code(
    code: Any,
    namespace: Any = "console",
    handles: Any = None,
    values: Any = None,
    result: Any = "repr",
    reset: Any = False,
) -> dict[str, Any]:
    """Run ``code`` in the namespace called ``namespace`` and return an envelope.

    ``handles`` maps names to bridge handles (ints) of engines and routers,
    ``values`` maps names to plain values or typed arrays (which arrive as
    memoryviews). ``result`` chooses how the last expression's value is
    returned: ``"repr"`` (a str), ``"value"`` (converted by ``to_plain``) or
    ``"none"``. ``reset=True`` empties the namespace first.

    The envelope's value is ``{stdout, stderr, repr, value, error}``, where
    ``error`` is None or ``{type, message, traceback}`` for an exception
    raised by the code. Invalid arguments (a non-str ``code``, an unknown
    ``result`` mode, a name that is not an identifier, an unknown handle) give
    an error envelope instead, with the namespace unchanged.
    """
    return _envelope(_run, code, namespace, handles, values, result, reset)


def _check(code: Any) -> bool:
    code = _unwrap_js(code)
    if not isinstance(code, str):
        raise TypeError(f"code must be a str, got {type(code).__name__}")
    try:
        return codeop.compile_command(code, _FILENAME, "exec") is not None
    except (SyntaxError, ValueError, OverflowError):
        # Complete but invalid: running it shows the SyntaxError.
        return True


def check_code(code: Any) -> dict[str, Any]:
    """Tell whether ``code`` is a complete statement, as the interactive interpreter decides.

    The envelope's value is False while more lines are expected (an open
    block or bracket) and True when the code should run, including code with
    a syntax error, which running then reports.
    """
    return _envelope(_check, code)


def namespace_names(namespace: Any = "console") -> dict[str, Any]:
    """List the public names defined in ``namespace``, for completion and tests."""
    def names() -> list[str]:
        scope = _NAMESPACES.get(namespace, {})
        return sorted(name for name in scope if not name.startswith("_"))

    return _envelope(names)


def get_namespace(name: str) -> dict[str, Any]:
    """Return the namespace dict called ``name``, so that code in one namespace can read another's names.

    The console page uses it to reach the embedder that the chat loaded in
    its own namespace. Raises ``KeyError`` when no run has created ``name``.
    """
    if name not in _NAMESPACES:
        raise KeyError(f"no namespace {name!r}; existing namespaces are {sorted(_NAMESPACES)}")
    return _NAMESPACES[name]
