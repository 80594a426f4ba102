"""sona_web._console, which serves the RUN_PYTHON message, tested in CPython.

The browser tests (tests/browser/test_console.py) run the same module inside
Pyodide behind the real console.
"""

from __future__ import annotations

import numpy as np
import pytest

from sona_web import _bridge, _console


@pytest.fixture(autouse=True)
def fresh_namespaces():
    """Give every test empty namespaces, as a newly loaded page has."""
    _console._NAMESPACES.clear()
    yield
    _console._NAMESPACES.clear()


def run(code, **options):
    envelope = _console.run_code(code, **options)
    assert envelope["ok"], envelope
    return envelope["value"]


def error_of(envelope):
    assert not envelope["ok"], envelope
    return envelope["error"]


def test_last_expression_repr_and_stdout():
    result = run("x = 2\nprint('hi')\nx * 3")
    assert result["repr"] == "6"
    assert result["stdout"] == "hi\n"
    assert result["stderr"] == ""
    assert result["error"] is None


def test_value_mode_converts_like_bridge():
    result = run("import numpy as np\nnp.arange(3, dtype=np.float32)", result="value")
    assert result["repr"] is None
    assert bytes(result["value"]) == np.arange(3, dtype=np.float32).tobytes()


def test_none_mode_returns_nothing():
    result = run("41 + 1", result="none")
    assert result["repr"] is None
    assert result["value"] is None


def test_namespace_keeps_names_between_runs():
    run("counter = 1")
    run("counter += 1")
    assert run("counter")["repr"] == "2"
    assert run("counter", namespace="other")["error"]["type"] == "NameError"
    assert _console.namespace_names()["value"] == ["counter"]


def test_reset_empties_namespace():
    run("kept = 1")
    assert run("'kept' in dir()", reset=True)["repr"] == "False"


def test_exception_is_part_of_result():
    result = run("def fail():\n    raise ValueError('bad value')\nfail()")
    error = result["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "bad value"
    assert "raise ValueError('bad value')" in error["traceback"]
    assert "_console.py" not in error["traceback"]


def test_syntax_error_shows_only_user_code():
    error = run("def f(:")["error"]
    assert error["type"] == "SyntaxError"
    assert error["traceback"].startswith('  File "<console-')
    assert "ast.py" not in error["traceback"]


def test_stderr_captured():
    assert run("import sys\nprint('warn', file=sys.stderr)")["stderr"] == "warn\n"


def test_output_truncated(monkeypatch):
    monkeypatch.setattr(_console, "MAX_OUTPUT_CHARS", 10)
    result = run("print('x' * 50)")
    assert result["stdout"] == "x" * 10 + "\n[output truncated]\n"


def test_handles_bind_live_objects():
    created = _bridge.create_router([{"name": "a", "cost": 0}, {"name": "b", "cost": 1}], {"hiddenDim": 16, "embeddingDim": 16})
    handle = created["value"]["handle"]
    try:
        result = run("router.models", handles={"router": handle}, result="value")
        assert result["value"] == ["a", "b"]
    finally:
        _bridge.release(handle)


def test_values_bound_as_names():
    result = run("len(data) + number", values={"data": memoryview(b"abcd"), "number": 1}, result="value")
    assert result["value"] == 5


@pytest.mark.parametrize(
    ("kwargs", "kind", "message"),
    [
        ({"code": 5}, "TypeError", "code must be a str, got int"),
        ({"code": "1", "result": "html"}, "ValueError", "result must be one of"),
        ({"code": "1", "namespace": "not valid"}, "ValueError", "namespace must be a Python identifier"),
        ({"code": "1", "handles": {"router": 987654}}, "KeyError", "unknown handle 987654"),
        ({"code": "1", "handles": ["router"]}, "TypeError", "handles must be an object"),
        ({"code": "1", "values": {"1x": 2}}, "ValueError", "values name must be a Python identifier"),
    ],
)
def test_invalid_arguments_give_error_envelope(kwargs, kind, message):
    error = error_of(_console.run_code(**kwargs))
    assert error["pythonType"] == kind
    assert message in error["message"]


def test_invalid_arguments_leave_namespace_unchanged():
    run("kept = 1")
    error_of(_console.run_code("kept = 2", handles={"router": 987654}))
    assert run("kept")["repr"] == "1"


def test_too_many_namespaces(monkeypatch):
    monkeypatch.setattr(_console, "MAX_NAMESPACES", 2)
    run("1", namespace="first")
    run("1", namespace="second")
    error = error_of(_console.run_code("1", namespace="third"))
    assert error["pythonType"] == "ValueError"
    assert "too many namespaces" in error["message"]


@pytest.mark.parametrize(
    ("code", "complete"),
    [
        ("x = 1", True),
        ("for i in range(3):", False),
        ("for i in range(3):\n    print(i)", True),
        ("x = (1,", False),
        ("def f(:", True),
    ],
)
def test_check_code(code, complete):
    assert _console.check_code(code) == {"ok": True, "value": complete}


def test_check_code_rejects_non_str():
    error = error_of(_console.check_code(None))
    assert error["pythonType"] == "TypeError"
    assert error["message"] == "code must be a str, got NoneType"


def test_private_checks_raise():
    with pytest.raises(TypeError, match="code must be a str, got bytes"):
        _console._run(b"1", "console", None, None, "repr", False)
    with pytest.raises(ValueError, match=r"result must be one of \('repr', 'value', 'none'\), got 'x'"):
        _console._run("1", "console", None, None, "x", False)
    with pytest.raises(ValueError, match="namespace must be a Python identifier, got '1a'"):
        _console._namespace("1a", False)
    with pytest.raises(TypeError, match="values must be an object of name: value pairs, got list"):
        _console._bindings(None, [1])
    with pytest.raises(ValueError, match="handles name must be a Python identifier, got 'a b'"):
        _console._bindings({"a b": 1}, None)
    with pytest.raises(TypeError, match="code must be a str, got int"):
        _console._check(1)


def test_get_namespace():
    run("shared = 'yes'", namespace="chat")
    assert _console.get_namespace("chat")["shared"] == "yes"
    with pytest.raises(KeyError, match="no namespace 'missing'; existing namespaces are \\['chat'\\]"):
        _console.get_namespace("missing")
