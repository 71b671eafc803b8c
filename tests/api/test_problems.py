"""One RFC 9457 problem format for every error; request ids accepted, generated and echoed."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from ohe.api.auth import public


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


def test_not_found_and_method_not_allowed_are_problems(client: FlaskClient) -> None:
    body = _assert_problem(client.get("/no/such/path/"), 404)
    assert body["type"] == "about:blank"
    assert body["title"] == "Not Found"
    response = client.post("/api/metrics/live/")
    _assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_oversized_bodies_are_refused_with_413(app: Flask, client: FlaskClient) -> None:
    @app.post("/test-echo/")
    @public
    def echo() -> dict:
        from flask import request

        return {"size": len(request.get_data())}

    limit = app.config["MAX_CONTENT_LENGTH"]
    assert client.post("/test-echo/", data=b"x" * 100).get_json() == {"size": 100}
    body = _assert_problem(client.post("/test-echo/", data=b"x" * (limit + 1)), 413)
    assert "OHE_MAX_REQUEST_BYTES" in body["detail"]


def test_unhandled_errors_are_500_without_internals(app: Flask, client: FlaskClient, capfd) -> None:
    @app.get("/test-boom/")
    @public
    def boom() -> None:
        raise RuntimeError("database password is hunter2 at /srv/secret/path.py")

    response = client.get("/test-boom/", headers={"X-Request-ID": "req-boom-1"})
    body = _assert_problem(response, 500)
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "RuntimeError" not in text and "Traceback" not in text
    assert body["request_id"] == "req-boom-1"
    logged = capfd.readouterr().err
    assert "req-boom-1" in logged and "RuntimeError" in logged


def test_request_id_is_accepted_or_generated_and_echoed(client: FlaskClient) -> None:
    given = client.get("/api/metrics/live/", headers={"X-Request-ID": "abc-123.def"})
    assert given.headers["X-Request-ID"] == "abc-123.def"
    generated = client.get("/api/metrics/live/")
    assert len(generated.headers["X-Request-ID"]) == 32
    junk = client.get("/api/metrics/live/", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert junk.headers["X-Request-ID"] != "<script>alert(1)</script>"
    assert len(junk.headers["X-Request-ID"]) == 32
