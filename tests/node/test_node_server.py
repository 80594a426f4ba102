"""The example server (examples/node-server/server.mjs) over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

SERVER_SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "node-server" / "server.mjs"

DIM = 64
ROUTES = "large:1,small:0"


@pytest.fixture(scope="module")
def server(start_server):
    return start_server("--dim", str(DIM), "--routes", ROUTES, "--max-body-bytes", "4096")


@pytest.fixture(scope="module")
def client(server):
    return server.client


def unit(vector) -> list[float]:
    array = np.asarray(vector, dtype=np.float64)
    return (array / np.linalg.norm(array)).tolist()


def test_health(client):
    reply = client.get("health")
    assert reply.status == 200
    assert reply.body == {"status": "ok"}


def test_query_returns_adapted_embedding_and_route(client):
    reply = client.post("api/query", {"text": "what is my checking balance"})

    assert reply.status == 200
    assert len(reply.body["embedding"]) == DIM
    assert reply.body["sessionId"]
    assert reply.body["route"]["model"] in ("large", "small")
    assert len(reply.body["route"]["scores"]) == 2
    assert isinstance(reply.body["patterns"], list)


def test_feedback_changes_later_outputs(client):
    query = {"text": "book a flight to paris for two people"}
    first = client.post("api/query", {**query, "sessionId": "learn-0"}).body
    reply = client.post("api/feedback", {"sessionId": "learn-0", "helpful": True, "response": "flights to paris"})
    assert reply.status == 200

    for index in range(1, 6):
        session = f"learn-{index}"
        assert client.post("api/query", {**query, "sessionId": session}).status == 200
        reply = client.post("api/feedback", {"sessionId": session, "quality": 1.0, "response": "flights to paris"})
        assert reply.status == 200
        assert reply.body == {"sessionId": session, "trajectoryId": reply.body["trajectoryId"], "quality": 1.0, "learned": True}

    later = client.post("api/query", query).body
    # MicroLoRA moved the query's representation toward the helpful response.
    change = float(np.max(np.abs(np.subtract(later["embedding"], first["embedding"]))))
    assert change > 1e-5
    # The router learned from the same feedback.
    assert later["route"]["scores"] != first["route"]["scores"]


def test_feedback_with_response_embedding(client):
    embedding = unit(np.arange(DIM) % 7 + 1)
    client.post("api/query", {"embedding": embedding, "sessionId": "with-vector"})
    reply = client.post("api/feedback", {"sessionId": "with-vector", "helpful": False, "responseEmbedding": embedding})
    assert reply.status == 200
    assert reply.body["quality"] == 0


def test_learn_then_patterns_carry_route_stats(client):
    embedding = unit(np.arange(1, DIM + 1))
    for index in range(8):
        session = f"pattern-{index}"
        reply = client.post("api/query", {"embedding": embedding, "sessionId": session})
        assert reply.status == 200
        assert client.post("api/feedback", {"sessionId": session, "helpful": index % 2 == 0}).status == 200

    learned = client.post("api/learn")
    assert learned.status == 200
    assert learned.body["engine"]["new_trajectories"] >= 8
    assert "router" in learned.body

    reply = client.post("api/query", {"embedding": embedding, "k": 2})
    assert reply.status == 200
    assert 1 <= len(reply.body["patterns"]) <= 2
    nearest = reply.body["patterns"][0]
    assert nearest["similarity"] > 0.5
    assert set(nearest["route_stats"]) <= {"large", "small"}
    assert sum(stats["count"] for stats in nearest["route_stats"].values()) > 0


def test_stats_counts_trajectories(client):
    before = client.get("api/stats").body
    session = "stats-session"
    client.post("api/query", {"text": "hello there", "sessionId": session})
    client.post("api/feedback", {"sessionId": session, "helpful": True})
    after = client.get("api/stats").body

    assert after["engine"]["trajectories_recorded"] == before["engine"]["trajectories_recorded"] + 1
    assert after["router"]["outcomes"] == before["router"]["outcomes"] + 1
    assert after["sessions"]["max"] == 1000


def test_feedback_on_unknown_session_is_404(client):
    reply = client.post("api/feedback", {"sessionId": "never-opened", "helpful": True})
    assert reply.status == 404
    assert "unknown sessionId \"never-opened\"" in reply.body["error"]


def test_second_feedback_is_404(client):
    client.post("api/query", {"text": "twice", "sessionId": "twice"})
    assert client.post("api/feedback", {"sessionId": "twice", "helpful": True}).status == 200
    assert client.post("api/feedback", {"sessionId": "twice", "helpful": True}).status == 404


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("api/query", {}, "exactly one of the fields text and embedding"),
        ("api/query", {"text": "a", "embedding": [0.0] * DIM}, "exactly one of the fields text and embedding"),
        ("api/query", {"text": 42}, "field text must be a non-empty string"),
        ("api/query", {"text": "   "}, "field text must be a non-empty string"),
        ("api/query", {"embedding": [0.5, 0.5]}, f"field embedding must be an array of {DIM} numbers"),
        ("api/query", {"embedding": "0.5"}, f"field embedding must be an array of {DIM} numbers"),
        ("api/query", {"embedding": [0.1] * (DIM - 1) + ["x"]}, f"field embedding[{DIM - 1}] must be a finite number"),
        ("api/query", {"text": "hi", "k": 0}, "field k must be an integer in [1, 20]"),
        ("api/query", {"text": "hi", "k": 2.5}, "field k must be an integer in [1, 20]"),
        ("api/query", {"text": "hi", "sessionId": 7}, "field sessionId must be a string"),
        ("api/query", {"text": "hi", "sessionId": ""}, "field sessionId must be a string"),
        ("api/feedback", {"helpful": True}, "field sessionId is required"),
        ("api/feedback", {"sessionId": "s"}, "field quality (a number in [0, 1]) or helpful (a boolean) is required"),
        ("api/feedback", {"sessionId": "s", "quality": 1.5}, "field quality must be a number in [0, 1]"),
        ("api/feedback", {"sessionId": "s", "quality": "1"}, "field quality must be a number in [0, 1]"),
        ("api/feedback", {"sessionId": "s", "helpful": "yes"}, "field helpful must be true or false"),
        ("api/feedback", {"sessionId": "s", "helpful": True, "quality": 1}, "give only one of the fields quality and helpful"),
        ("api/feedback", {"sessionId": "s", "helpful": True, "response": ""}, "field response must be a non-empty string"),
        ("api/feedback", {"sessionId": "s", "helpful": True, "response": "a", "responseEmbedding": [0.0] * DIM},
         "give only one of the fields response and responseEmbedding"),
        ("api/feedback", {"sessionId": "s", "helpful": True, "responseEmbedding": [1.0]},
         f"field responseEmbedding must be an array of {DIM} numbers"),
    ],
)
def test_invalid_fields_are_400(client, path, body, fragment):
    reply = client.post(path, body)
    assert reply.status == 400
    assert fragment in reply.body["error"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body is empty"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b"null", "request body must be a JSON object"),
    ],
)
def test_malformed_bodies_are_400(client, raw, fragment):
    reply = client.post("api/query", raw=raw)
    assert reply.status == 400
    assert fragment in reply.body["error"]


def test_declared_oversized_body_is_413(client):
    reply = client.post("api/query", {"text": "x" * 5000})
    assert reply.status == 413
    assert "exceeds the limit of 4096 bytes" in reply.body["error"]


def test_chunked_oversized_body_is_413(client):
    # Without Content-Length the limit is enforced while reading.
    parts = urlsplit(client.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        chunks = (b'{"text": "' + b"y" * 1000 for _ in range(8))
        connection.request("POST", "/api/query", body=chunks, headers={"Content-Type": "application/json"},
                           encode_chunked=True)
        reply = connection.getresponse()
        assert reply.status == 413
        assert b"exceeds the limit of 4096 bytes" in reply.read()
    finally:
        connection.close()


def test_wrong_method_is_405(client):
    reply = client.get("api/query")
    assert reply.status == 405
    assert reply.headers["Allow"] == "POST"
    assert "method GET is not allowed on /api/query" in reply.body["error"]


def test_unknown_path_is_404(client):
    reply = client.get("api/nothing")
    assert reply.status == 404
    assert reply.body == {"error": "no endpoint /api/nothing"}


def test_oldest_session_is_evicted(start_server):
    client = start_server("--dim", "16", "--max-sessions", "2").client
    for session in ("old", "middle", "new"):
        assert client.post("api/query", {"text": f"query {session}", "sessionId": session}).status == 200

    assert client.post("api/feedback", {"sessionId": "old", "helpful": True}).status == 404
    assert client.post("api/feedback", {"sessionId": "middle", "helpful": True}).status == 200
    assert client.post("api/feedback", {"sessionId": "new", "helpful": True}).status == 200
    sessions = client.get("api/stats").body["sessions"]
    assert sessions["evicted"] == 1
    assert sessions["open"] == 0
    assert client.get("api/stats").body["router"] is None


def test_session_expires_after_ttl(start_server):
    client = start_server("--dim", "16", "--session-ttl-ms", "300").client
    assert client.post("api/query", {"text": "soon stale", "sessionId": "stale"}).status == 200
    time.sleep(0.6)

    reply = client.post("api/feedback", {"sessionId": "stale", "helpful": True})
    assert reply.status == 404
    assert client.get("api/stats").body["sessions"]["expired"] == 1


def test_trajectory_expired_in_engine_is_404(start_server):
    # edge_deployment keeps 128 active trajectories, fewer than the 1000
    # sessions the server keeps, so the engine drops the first one.
    client = start_server("--dim", "16", "--preset", "edge_deployment").client
    for index in range(129):
        assert client.post("api/query", {"embedding": unit(np.arange(16) + index), "sessionId": f"s{index}"}).status == 200

    reply = client.post("api/feedback", {"sessionId": "s0", "helpful": True})
    assert reply.status == 404
    assert "trajectory 1 of session \"s0\" expired in the engine" in reply.body["error"]
    assert client.post("api/feedback", {"sessionId": "s128", "helpful": True}).status == 200


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--port", "99999"], "--port must be an integer in [0, 65535]"),
        (["--dim", "1"], "--dim must be an integer in [2, 8192]"),
        (["--routes", "large:-1"], "--routes items must be name:cost with cost >= 0"),
        (["--max-sessions", "0"], "--max-sessions must be an integer in [1, 1000000]"),
    ],
)
def test_bad_command_line_exits_2(node, args, fragment):
    result = subprocess.run([node, str(SERVER_SCRIPT), *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert fragment in result.stderr
