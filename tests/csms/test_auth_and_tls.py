"""Security: chargers are refused before the websocket upgrade; TLS 1.2+ carries OCPP (wss)."""

from __future__ import annotations

import asyncio
import base64
import ssl
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms.config import Config
from csms.security import hash_password
from csms.service import Loadstar
from csms.store import SqliteStore
from tests.conftest import make_config
from tests.raw_client import RawClient

PASSWORD = "s3cret-Passw0rd-for-CP"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def boot16(c: RawClient) -> None:
    boot = await c.ok("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"})
    assert boot["status"] == "Accepted"


# -- HTTP Basic authentication (security profile 1) ------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, require_auth=True)


@pytest.fixture
async def registered(server: Loadstar) -> str:
    await server.store.register_charge_point("CP1", hash_password(PASSWORD))
    return "CP1"


async def refused_status(url: str, subprotocols: list[str] | None = None,
                         **kwargs: Any) -> int:
    """The HTTP status a refused handshake got; fails if the upgrade succeeds."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=subprotocols,  # type: ignore[arg-type]
                           **kwargs):
            pass
    return refused.value.response.status_code


async def test_a_registered_charger_with_the_right_password_connects_and_boots(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    c = await RawClient.connect(url(registered), "ocpp1.6",
                                additional_headers=basic(registered, PASSWORD))
    try:
        assert c.ws.subprotocol == "ocpp1.6"
        await boot16(c)
    finally:
        await c.close()
    record = await server.store.get_charge_point(registered)
    assert record is not None and record.registered and record.vendor == "Acme"


async def test_credentials_in_the_url_are_sent_as_basic_auth_and_accepted(
        server: Loadstar, registered: str) -> None:
    c = await RawClient.connect(
        f"ws://{registered}:{PASSWORD}@127.0.0.1:{server.ocpp_port}/ocpp/{registered}",
        "ocpp2.0.1")
    try:
        assert (await c.ok("Heartbeat", {}))["currentTime"]
    finally:
        await c.close()


async def test_a_wrong_password_is_refused_with_401_before_the_upgrade(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    status = await refused_status(url(registered), ["ocpp1.6"],
                                  additional_headers=basic(registered, "wrong"))
    assert status == 401


async def test_the_refusal_asks_for_basic_credentials(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(registered), subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
            pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")


async def test_no_credentials_at_all_are_refused_with_401(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    assert await refused_status(url(registered), ["ocpp1.6"]) == 401


async def test_an_unknown_charger_is_refused_with_401_before_the_upgrade(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    status = await refused_status(url("NOBODY"), ["ocpp1.6"],
                                  additional_headers=basic("NOBODY", PASSWORD))
    assert status == 401
    assert await server.store.get_charge_point("NOBODY") is None


async def test_another_chargers_credentials_are_refused(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    await server.store.register_charge_point("CP2", hash_password("other"))
    status = await refused_status(url("CP2"), ["ocpp1.6"],
                                  additional_headers=basic(registered, PASSWORD))
    assert status == 401


async def test_a_client_offering_no_ocpp_subprotocol_is_refused_with_400(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    auth = basic(registered, PASSWORD)
    assert await refused_status(url(registered), None, additional_headers=auth) == 400
    assert await refused_status(url(registered), ["ocpp1.5", "mqtt"],
                                additional_headers=auth) == 400


async def test_the_stored_password_hash_is_not_the_password(
        server: Loadstar, registered: str) -> None:
    stored = await server.store.get_password_hash(registered)
    assert stored is not None and stored != PASSWORD and PASSWORD not in stored
    assert stored.startswith("scrypt$")
    await server.store.flush()
    for path in Path(server.config.store.path).parent.glob("loadstar.db*"):
        assert PASSWORD.encode() not in path.read_bytes(), path


async def test_a_url_encoded_charger_id_is_decoded_before_authentication(
        server: Loadstar, registered: str) -> None:
    await server.store.register_charge_point("CP*1|A", hash_password(PASSWORD))
    c = await RawClient.connect(f"ws://127.0.0.1:{server.ocpp_port}/ocpp/CP%2A1%7CA",
                                "ocpp1.6", additional_headers=basic("CP*1|A", PASSWORD))
    try:
        await boot16(c)
    finally:
        await c.close()
    record = await server.store.get_charge_point("CP*1|A")
    assert record is not None and record.vendor == "Acme"
    assert await server.store.get_charge_point("CP%2A1%7CA") is None


# -- Charger ids in the URL (no authentication needed) ---------------------------------------


@pytest.fixture
async def open_server(tmp_path: Path) -> AsyncIterator[Loadstar]:
    (tmp_path / "open").mkdir()
    service = Loadstar(make_config(tmp_path / "open"))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.mark.parametrize(("path", "cp_id"), [
    ("/ocpp/CP%2A1", "CP*1"),
    ("/ocpp/a-b_c=d:e+f|g@h.i", "a-b_c=d:e+f|g@h.i"),
    ("/ocpp/" + "X" * 48, "X" * 48),
    ("/CPID", "CPID"),
    ("/CPID/", "CPID"),
])
async def test_the_charger_id_is_read_from_the_path_and_url_decoded(
        open_server: Loadstar, path: str, cp_id: str) -> None:
    c = await RawClient.connect(f"ws://127.0.0.1:{open_server.ocpp_port}{path}", "ocpp1.6")
    try:
        await boot16(c)
        conn = open_server.registry.get(cp_id)
        assert conn is not None and conn.cp_id == cp_id
    finally:
        await c.close()
    record = await open_server.store.get_charge_point(cp_id)
    assert record is not None and record.vendor == "Acme"


@pytest.mark.parametrize("path", [
    "/ocpp/CP%2F1", "/ocpp/CP%201", "/ocpp/CP%C3%84", "/ocpp/CP%00", "/ocpp/CP%0D%0AX",
    "/ocpp/..", "/ocpp/a..b", "/ocpp/%2E", "/ocpp/" + "X" * 49, "/ocpp/%FF",
])
async def test_a_charger_id_ocpp_does_not_allow_is_refused_before_the_upgrade(
        open_server: Loadstar, path: str) -> None:
    status = await refused_status(f"ws://127.0.0.1:{open_server.ocpp_port}{path}", ["ocpp1.6"])
    assert status == 400
    assert await open_server.store.list_charge_points() == []


@pytest.mark.parametrize("path", ["/", "/ocpp", "/ocpp/", "/ocpp/a/b", "/x/CP1"])
async def test_a_path_without_a_charger_id_is_refused_before_the_upgrade(
        open_server: Loadstar, path: str) -> None:
    status = await refused_status(f"ws://127.0.0.1:{open_server.ocpp_port}{path}", ["ocpp1.6"])
    assert status == 404


# -- TLS (security profile 2: TLS with Basic authentication) ---------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(tmp_path: Path, ca: trustme.CA) -> AsyncIterator[Loadstar]:
    cert = ca.issue_cert("localhost", "127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    service = Loadstar(make_config(tmp_path, require_auth=True, tls_cert=str(chain),
                                   tls_key=str(key)))
    await service.start()
    await service.store.register_charge_point("TLS1", hash_password(PASSWORD))
    try:
        yield service
    finally:
        await service.stop()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(ctx)
    return ctx


async def test_a_charger_that_trusts_the_ca_runs_a_1_6_transaction_over_wss(
        tls_server: Loadstar, ca: trustme.CA) -> None:
    c = await RawClient.connect(f"wss://localhost:{tls_server.ocpp_port}/ocpp/TLS1", "ocpp1.6",
                                ssl=trusting(ca), additional_headers=basic("TLS1", PASSWORD))
    try:
        assert c.ws.subprotocol == "ocpp1.6"
        await boot16(c)
        await c.ok("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                          "status": "Preparing"})
        assert (await c.ok("Authorize", {"idTag": "TAG1"}))["idTagInfo"]["status"] == "Accepted"
        start = await c.ok("StartTransaction", {"connectorId": 1, "idTag": "TAG1",
                                                "meterStart": 1000,
                                                "timestamp": "2026-11-23T10:00:00Z"})
        tx = start["transactionId"]
        await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": "2026-11-23T10:30:00Z", "sampledValue": [
                {"value": "4000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]})
        await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 7000, "idTag": "TAG1",
                                       "timestamp": "2026-11-23T11:00:00Z"})
    finally:
        await c.close()
    session = await tls_server.store.get_session("TLS1", str(tx))
    assert session is not None and session.stopped_at is not None
    assert session.energy_kwh == 6.0


async def test_wss_still_refuses_a_wrong_password(tls_server: Loadstar, ca: trustme.CA) -> None:
    status = await refused_status(f"wss://localhost:{tls_server.ocpp_port}/ocpp/TLS1",
                                  ["ocpp1.6"], ssl=trusting(ca),
                                  additional_headers=basic("TLS1", "wrong"))
    assert status == 401


async def test_a_tls_1_1_only_client_is_refused(tls_server: Loadstar, ca: trustme.CA) -> None:
    ctx = trusting(ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client really offer TLS 1.1
    # The server aborts the handshake: an alert (SSLError) or a reset, depending on OpenSSL.
    with pytest.raises((ssl.SSLError, ConnectionError)) as refused:
        async with connect(f"wss://localhost:{tls_server.ocpp_port}/ocpp/TLS1",
                           subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           ssl=ctx, additional_headers=basic("TLS1", PASSWORD)):
            pass
    # Not the client giving up on its own: it did offer TLS 1.1 to the server.
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value)


async def test_the_tls_server_negotiates_at_least_tls_1_2(
        tls_server: Loadstar, ca: trustme.CA) -> None:
    c = await RawClient.connect(f"wss://localhost:{tls_server.ocpp_port}/ocpp/TLS1", "ocpp1.6",
                                ssl=trusting(ca), additional_headers=basic("TLS1", PASSWORD))
    try:
        tls = c.ws.transport.get_extra_info("ssl_object")
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        await c.ok("Heartbeat", {})
    finally:
        await c.close()


async def test_a_plain_ws_client_cannot_talk_to_the_tls_port(tls_server: Loadstar) -> None:
    with pytest.raises(Exception):  # noqa: B017 - any failure to upgrade is a refusal here
        async with connect(f"ws://localhost:{tls_server.ocpp_port}/ocpp/TLS1",
                           subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=basic("TLS1", PASSWORD), open_timeout=5):
            pass


async def test_the_password_hash_survives_a_restart(tmp_path: Path) -> None:
    config = make_config(tmp_path, require_auth=True)
    store = SqliteStore(config.store.path)
    await store.open()
    await store.register_charge_point("CP9", hash_password(PASSWORD))
    await store.close()
    service = Loadstar(config)
    await service.start()
    try:
        c = await RawClient.connect(f"ws://127.0.0.1:{service.ocpp_port}/ocpp/CP9", "ocpp1.6",
                                    additional_headers=basic("CP9", PASSWORD))
        try:
            await c.ok("Heartbeat", {})
        finally:
            await c.close()
    finally:
        await service.stop()


# -- Hostile handshakes ------------------------------------------------------------------------


async def test_two_authorization_headers_are_refused_with_400(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    headers = [*basic(registered, PASSWORD).items(), *basic(registered, "wrong").items()]
    assert await refused_status(url(registered), ["ocpp1.6"], additional_headers=headers) == 400


async def test_a_password_guessing_flood_from_one_address_is_cut_off_and_a_charger_still_connects(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    async def guess(i: int) -> int:
        return await refused_status(url(registered), ["ocpp1.6"],
                                    additional_headers=basic(registered, f"guess-{i}"),
                                    local_addr=("127.0.0.2", 0))

    flood = asyncio.gather(*(guess(i) for i in range(200)))
    charger = await RawClient.connect(url(registered), "ocpp1.6",
                                      additional_headers=basic(registered, PASSWORD))
    try:
        await boot16(charger)
    finally:
        await charger.close()
    statuses = await flood
    # Every guess got an answer; only a handful were worth a password hash: the burst of
    # failures allowed, plus the checks already running when the last of those failed.
    ocpp = server.config.ocpp
    assert sorted(set(statuses)) <= [401, 429]
    assert statuses.count(401) <= ocpp.failed_auth_burst + ocpp.max_pending_auth_per_address


async def test_a_misconfigured_charger_does_not_lock_out_its_neighbours_behind_one_address(
        server: Loadstar, url: Callable[[str], str], registered: str) -> None:
    behind_one_nat = {"local_addr": ("127.0.0.3", 0)}
    statuses = [await refused_status(url("MISCONFIGURED"), ["ocpp1.6"],
                                     additional_headers=basic("MISCONFIGURED", "old"),
                                     **behind_one_nat)
                for _ in range(server.config.ocpp.failed_auth_burst + 5)]
    assert statuses[-1] == 429  # the guessing id is cut off...
    charger = await RawClient.connect(url(registered), "ocpp1.6",
                                      additional_headers=basic(registered, PASSWORD),
                                      **behind_one_nat)
    try:
        await boot16(charger)  # ...its neighbour is not
    finally:
        await charger.close()
