"""The sandbox's `(method, path pattern) -> handler` table."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.routes import Call, Router


def handler(name: str) -> Callable[[Call], tuple[int, dict]]:
    return lambda call: (200, {"route": name, "params": call.params})


def table() -> Router:
    router: Router = Router()
    router.add("GET", "/token/grants", handler("grants"))
    router.add("POST", "/developer/integrations/{wallet_id}/resync", handler("resync"))
    router.add("PATCH", "/developer/grants/{grant_id}/transaction-limit", handler("limit"))
    router.add("GET", "/v1.0/x", handler("dotted"))
    return router


def test_params_reach_the_handler() -> None:
    found = table().match("POST", "/developer/integrations/wallet_ab12/resync")
    assert found.handler is not None and found.params == {"wallet_id": "wallet_ab12"}
    assert found.handler(Call("POST", "/", params=found.params)) == (
        200, {"route": "resync", "params": {"wallet_id": "wallet_ab12"}})
    limit = table().match("PATCH", "/developer/grants/cgrant_1/transaction-limit")
    assert limit.params == {"grant_id": "cgrant_1"}


def test_wrong_method_is_told_from_unknown_path() -> None:
    wrong = table().match("DELETE", "/developer/integrations/w1/resync")
    assert wrong.handler is None and wrong.path_known
    unknown = table().match("GET", "/token/grants/extra")
    assert unknown.handler is None and not unknown.path_known


def test_a_parameter_is_one_segment_and_patterns_are_literal() -> None:
    router = table()
    assert router.match("POST", "/developer/integrations/a/b/resync").handler is None
    assert router.match("POST", "/developer/integrations//resync").handler is None
    assert router.match("GET", "/v1.0/x").handler is not None
    assert router.match("GET", "/v1x0/x").handler is None  # "." is not a wildcard
