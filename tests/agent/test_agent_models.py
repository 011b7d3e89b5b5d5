"""Models uploaded once as raw bytes (PUT /v1/models/{sha256}) and named by hash afterwards."""

from __future__ import annotations

import pytest

from agent_kit import Client, b64, make_model, sha
from autoprune.agent import ModelStore, SessionCache


def test_upload_once_then_profile_by_hash(client, tiny):
    status, _, r = client.put_model(tiny)
    assert status == 201 and r["sha256"] == sha(tiny) and r["size_bytes"] == len(tiny) and r["stored"] == "new"
    status, _, r = client.put_model(tiny)
    assert status == 200 and r["stored"] == "already"  # idempotent
    status, _, r = client.profile_by_hash(sha(tiny), repetitions=10, warmup=2)
    assert status == 200 and r["latency"]["n"] >= 10 and r["settings"]["model_sha256"] == sha(tiny)
    assert client.call("GET", "/v1/health")[2]["models"]["models"] == 1


def test_unknown_hash_is_404_naming_the_field(client, tiny):
    status, _, r = client.profile_by_hash(sha(b"never uploaded"))
    assert status == 404 and r["error"]["code"] == "unknown_model" and r["error"]["field"] == "model_sha256"
    assert "PUT" in r["error"]["message"]


def test_inline_model_still_works_and_is_then_known_by_hash(client):
    model = make_model(dim=8)
    assert client.profile(model, repetitions=5)[0] == 200
    status, _, r = client.profile_by_hash(sha(model), repetitions=5)
    assert status == 200 and r["settings"]["model_sha256"] == sha(model)


BAD_UPLOADS = [
    ("sha256 mismatch", lambda m: {"model": m, "digest": sha(b"other")}, 400, "sha256", "not"),
    ("bad sha256 in path", lambda m: {"model": m, "digest": "ABC"}, 400, "sha256", "64 lowercase hex"),
    ("path template itself", lambda m: {"model": m, "digest": "{sha256}"}, 400, "sha256", "64 lowercase hex"),
    ("not onnx", lambda m: {"model": b"this is not an onnx file"}, 400, "model", "not an ONNX model"),
    ("empty", lambda m: {"model": b""}, 400, "model", "empty"),
    ("external data", lambda m: {"model": make_model(external=True)}, 400, "model", "external data"),
    ("custom domain", lambda m: {"model": make_model(domain="com.evil.custom")}, 400, "model", "com.evil.custom"),
    ("too large", lambda m: {"model": make_model(dim=600)}, 413, None, "at most"),
    ("json content type", lambda m: {"model": m, "headers": {"Content-Type": "application/json"}}, 415, None, "octet-stream"),
    ("no token", lambda m: {"model": m, "token": None}, 401, None, "bearer"),
]


@pytest.mark.parametrize("make,status,field,words", [b[1:] for b in BAD_UPLOADS], ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_are_refused_with_the_same_screening(client, tiny, make, status, field, words):
    got, _, r = client.put_model(**make(tiny))
    assert got == status, r
    assert r["error"].get("field") == field and words in r["error"]["message"]
    assert client.call("GET", "/v1/health")[2]["models"]["models"] == 0  # nothing refused was kept


def test_model_and_model_sha256_together_are_refused(client, tiny):
    status, _, r = client.call("POST", "/v1/profile", {"model": b64(tiny), "model_sha256": sha(tiny)})
    assert status == 400 and r["error"]["field"] == "model_sha256"
    status, _, r = client.profile_by_hash("not-a-hash")
    assert status == 400 and r["error"]["field"] == "model_sha256"


def test_put_is_the_only_method_on_models(client, tiny):
    status, headers, _ = client.call("GET", f"/v1/models/{sha(tiny)}")
    assert status == 405 and headers["Allow"] == "PUT"


def test_session_is_reused_per_model_threads_and_provider(client, tiny):
    client.put_model(tiny)
    runs = [client.profile_by_hash(sha(tiny), repetitions=5, warmup=1, threads=t)[2]["session"] for t in (1, 1, 2, 1)]
    assert [s["reused"] for s in runs] == [False, True, False, False]  # the default cache holds one session
    assert runs[0]["create_s"] > 0 and runs[1]["create_s"] is None
    r = client.profile_by_hash(sha(tiny), repetitions=5)[2]
    assert r["session"]["reused"] and "reused" in r["peak_memory_how"]


def test_session_cache_can_be_disabled(agent_factory, tiny):
    client = Client(agent_factory(session_cache=0).url)
    client.put_model(tiny)
    assert [client.profile_by_hash(sha(tiny), repetitions=3)[2]["session"]["reused"] for _ in range(2)] == [False, False]


def test_model_store_is_lru_bounded_by_bytes():
    store = ModelStore(capacity_bytes=10)
    assert store.put("a", b"1234") and store.put("b", b"1234")
    store.get("a")  # a is now the most recently used
    assert store.put("c", b"1234")  # 12 bytes > 10: the least recently used (b) goes
    assert "a" in store and "c" in store and "b" not in store
    assert store.stats() == {"models": 2, "bytes": 8, "capacity_bytes": 10}
    assert not store.put("huge", b"x" * 11) and "huge" not in store and "a" in store


def test_session_cache_is_bounded_by_count():
    cache = SessionCache(capacity=2)
    made = []
    make = lambda k: lambda: made.append(k) or f"session-{k}"  # noqa: E731
    assert cache.get_or_create("a", make("a")) == ("session-a", False)
    assert cache.get_or_create("a", make("a")) == ("session-a", True)
    cache.get_or_create("b", make("b"))
    cache.get_or_create("c", make("c"))  # evicts a
    assert len(cache) == 2 and cache.get_or_create("a", make("a"))[1] is False
    assert made == ["a", "b", "c", "a"]
