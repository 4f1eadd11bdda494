"""`/openapi.json` and `/docs` describe the contract the Web SDK speaks: every customer
endpoint with its typed request and answer, its bearer sign-in and the error envelope; and
what the endpoints answer matches what the document says."""

from __future__ import annotations

from typing import Any

from tests.backend.helpers import assert_error, auth, get, post

CUSTOMER = {
    ("post", "/api/kryptos/create-link-token"): "LinkTokenAnswer",
    ("post", "/api/kryptos/exchange-token"): "Success",
    ("get", "/api/kryptos/session"): "SessionAnswer",
    ("post", "/api/kryptos/disconnect"): "Success",
    ("get", "/api/kryptos/holdings"): "HoldingsAnswer",
}
ERRORS = ("400", "401", "429", "502", "503")


def _doc(url: str) -> dict[str, Any]:
    answer = get(url, "/openapi.json")
    assert answer.status_code == 200, answer.text
    return answer.json()


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _json_schema(content: dict[str, Any]) -> dict[str, Any]:
    return content["content"]["application/json"]["schema"]


def test_every_customer_endpoint_has_typed_bodies_answers_and_the_error_envelope(backend):
    doc = _doc(backend.url)
    schemes = doc["components"]["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme") == "bearer"
               for s in schemes.values())
    for (method, path), answer_model in CUSTOMER.items():
        op = doc["paths"][path][method]
        assert op.get("security"), f"{path}: no bearer sign-in documented"
        ok = _json_schema(op["responses"]["200"])
        assert ok.get("$ref", "").endswith("/" + answer_model), (path, ok)
        assert _resolve(doc, ok)["properties"], path
        for status in ERRORS:
            err = _resolve(doc, _json_schema(op["responses"][status]))
            assert err["title"] == "ErrorBody", (path, status)
            assert {"success", "error", "code"} <= set(err["properties"]), (path, status)
            assert {"error", "code"} <= set(err["required"]), (path, status)
        if method == "post":
            body = _json_schema(op["requestBody"])
            assert body["type"] == "object", path
    exchange = _json_schema(doc["paths"]["/api/kryptos/exchange-token"]["post"]["requestBody"])
    assert exchange["required"] == ["public_token"]
    assert doc["paths"]["/api/kryptos/exchange-token"]["post"]["requestBody"]["required"]
    holdings = _resolve(doc, _json_schema(
        doc["paths"]["/api/kryptos/holdings"]["get"]["responses"]["200"]))
    row = doc["components"]["schemas"]["Holding"]
    assert {"holdings", "summary", "user_id", "timestamp"} <= set(holdings["properties"])
    assert "24hrChange" in row["properties"]  # the data API's own name, as answered


def test_webhooks_and_health_are_documented_and_the_demo_is_not_when_off(backend):
    doc = _doc(backend.url)
    hook = doc["paths"]["/api/kryptos/webhooks"]["post"]
    assert "data" in _json_schema(hook["requestBody"])["properties"]
    assert _json_schema(hook["responses"]["200"])["$ref"].endswith("/WebhookAnswer")
    assert _resolve(doc, _json_schema(hook["responses"]["401"]))["title"] == "ErrorBody"
    assert {"/healthz", "/readyz"} <= set(doc["paths"])
    assert not [p for p in doc["paths"] if p.startswith("/demo")]
    page = get(backend.url, "/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text


def test_answers_match_the_documented_schemas(backend):
    doc = _doc(backend.url)
    schemas = doc["components"]["schemas"]
    link = post(backend.url, "/api/kryptos/create-link-token", headers=auth("doc-1"))
    assert link.status_code == 200, link.text
    assert set(link.json()) == set(schemas["LinkTokenAnswer"]["properties"])
    session = get(backend.url, "/api/kryptos/session", headers=auth("doc-1"))
    assert session.status_code == 200
    assert set(session.json()) <= set(schemas["SessionAnswer"]["properties"])
    refused = assert_error(post(backend.url, "/api/kryptos/exchange-token", {"x": 1},
                                headers=auth("doc-1")), 400, "INVALID_REQUEST")
    assert set(refused) <= set(schemas["ErrorBody"]["properties"])


def test_the_demo_is_documented_when_on(start_backend, sandbox):
    on = start_backend(sandbox_url=sandbox.base_url, client_id=None, client_secret=None,
                       backend_jwt_secret=None, webhook_secret=None, backend_demo=True)
    doc = _doc(on.url)
    widget = doc["paths"]["/demo/widget"]["post"]
    assert _json_schema(widget["requestBody"])["required"] == ["link_token"]
    assert _json_schema(widget["responses"]["200"])["$ref"].endswith("/DemoWidgetAnswer")
