"""The shared HTTP base against a real Loadstar: envelope, JSend failures, paging, API keys.

Requests go through httpx's ASGI transport into the real app; one test uses real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from structlog.testing import capture_logs

from adapters.http.app import create_app
from adapters.http.auth import require_scope
from adapters.http.envelope import Envelope, Page, paging, success
from adapters.http.routing import ApiRouter
from adapters.http.server import HttpServer
from csms.service import Loadstar
from csms.store import ApiKeyRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def view() -> ApiRouter:
    """A small view as a seed view would be written: paged, keyed, in the envelope."""
    router = ApiRouter()

    @router.get("/v2/numbers/", response_model=Envelope[int])
    async def numbers(page: Annotated[Page, Depends(paging)],
                      _: Annotated[ApiKeyRecord, Depends(require_scope("read"))]
                      ) -> Envelope[int]:
        everything = range(250)
        return success(everything[page.offset:page.offset + page.limit], len(everything))

    @router.delete("/v2/numbers/")
    async def wipe(_: Annotated[ApiKeyRecord, Depends(require_scope("admin"))]) -> None:
        return None

    @router.get("/v2/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail /etc/passwd")

    return router


@pytest.fixture
async def app(server: Loadstar) -> FastAPI:
    app = create_app(server)
    app.include_router(view())
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        yield client


async def key(server: Loadstar, *scopes: str) -> dict[str, str]:
    new = await server.api_keys.create(scopes, NOW)
    return {"Authorization": f"Bearer {new.key}"}


async def test_healthz_is_public_and_reports_store_and_chargers(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"ok": True, "store": {"ok": True, "last_error": None},
                        "chargers_online": 0}


async def test_openapi_and_docs_are_generated(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert {"/healthz", "/v2/status", "/v2/numbers/"} <= set(spec["paths"])
    assert "/v2/numbers" not in spec["paths"]  # the slashless alias is served, not listed
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert (await client.get("/docs")).status_code == 200


async def test_status_needs_a_key(client: httpx.AsyncClient, server: Loadstar) -> None:
    r = await client.get("/v2/status")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["status"] == "fail" and "authorization" in r.json()["data"]
    bad = await client.get("/v2/status", headers={"Authorization": "Bearer lsk_nope"})
    assert bad.status_code == 401 and bad.json()["status"] == "fail"
    basic = await client.get("/v2/status", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401
    ok = await client.get("/v2/status", headers=await key(server, "read"))
    assert ok.status_code == 200
    body = ok.json()
    assert body["status"] == "success" and body["total"] == 1
    assert body["data"][0]["chargers_online"] == 0 and body["data"][0]["store_ok"] is True


async def test_a_key_without_the_scope_is_forbidden(client: httpx.AsyncClient,
                                                    server: Loadstar) -> None:
    read = await key(server, "read")
    r = await client.delete("/v2/numbers/", headers=read)
    assert r.status_code == 403
    assert r.json() == {"status": "fail",
                        "data": {"authorization": "this API key lacks the 'admin' scope"}}
    assert (await client.delete("/v2/numbers/", headers=await key(server, "admin"))
            ).status_code == 200
    # write implies read, admin implies both
    for scopes in (("write",), ("admin",)):
        assert (await client.get("/v2/status", headers=await key(server, *scopes))
                ).status_code == 200


async def test_a_revoked_key_stops_working(client: httpx.AsyncClient, server: Loadstar) -> None:
    new = await server.api_keys.create(("read",), NOW)
    headers = {"Authorization": f"Bearer {new.key}"}
    assert (await client.get("/v2/status", headers=headers)).status_code == 200
    assert await server.api_keys.revoke(new.id, NOW)
    assert (await client.get("/v2/status", headers=headers)).status_code == 401
    stored = await server.api_keys.list()
    assert all(new.key not in repr(record) for record in stored)


async def test_paging_in_the_envelope(client: httpx.AsyncClient, server: Loadstar) -> None:
    headers = await key(server, "read")
    first = (await client.get("/v2/numbers/", headers=headers)).json()
    assert first["total"] == 250 and first["data"] == list(range(100))
    page = (await client.get("/v2/numbers?limit=5&offset=248", headers=headers)).json()
    assert page == {"status": "success", "data": [248, 249], "total": 250}


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc", "limit=-1"])
async def test_a_bad_limit_is_a_400_fail_naming_it(client: httpx.AsyncClient, server: Loadstar,
                                                   query: str) -> None:
    r = await client.get(f"/v2/numbers/?{query}", headers=await key(server, "read"))
    assert r.status_code == 400
    assert r.json()["status"] == "fail" and list(r.json()["data"]) == ["limit"]


async def test_a_bad_offset_is_a_400_fail_naming_it(client: httpx.AsyncClient,
                                                    server: Loadstar) -> None:
    r = await client.get("/v2/numbers/?offset=-3&limit=2", headers=await key(server, "read"))
    assert r.status_code == 400 and list(r.json()["data"]) == ["offset"]


async def test_unknown_path_and_method_answer_in_the_envelope(client: httpx.AsyncClient) -> None:
    r = await client.get("/v2/nothing-here/")
    assert r.status_code == 404
    assert r.json() == {"status": "fail", "data": {"path": "no such resource: /v2/nothing-here/"}}
    r = await client.post("/healthz")
    assert r.status_code == 405 and r.json()["status"] == "fail"


async def test_an_unexpected_exception_is_a_logged_500_without_traceback(
        client: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        r = await client.get("/v2/boom")
    assert r.status_code == 500
    assert r.json() == {"status": "error", "message": "internal error; the server logged it"}
    assert "secret" not in r.text and "Traceback" not in r.text
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["http_request_failed"]


async def test_real_uvicorn_on_port_zero(app: FastAPI) -> None:
    http = HttpServer(app, "127.0.0.1", 0)
    with capture_logs() as logs:
        await http.start()
    try:
        assert http.port > 0
        assert {"event": "http_listening", "host": "127.0.0.1", "port": http.port,
                "log_level": "info"} in logs
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as client:
            assert (await client.get("/healthz")).json()["ok"] is True
            assert (await client.get("/v2/status")).status_code == 401
    finally:
        await http.stop()
    assert http.task is not None and http.task.done()


async def test_a_taken_port_is_an_oserror(app: FastAPI) -> None:
    first = HttpServer(app, "127.0.0.1", 0)
    await first.start()
    try:
        with pytest.raises(OSError):
            await HttpServer(app, "127.0.0.1", first.port).start()
    finally:
        await first.stop()
