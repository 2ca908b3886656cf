"""Certificates for chargers (issue 12 point 8), end to end with raw chargers of both versions:
SignCertificate answered by CertificateSigned from our CA, CSRs of other chargers refused,
GetCertificateStatus asked of a real OCSP responder, Get15118EVCertificate forwarded to a real
contract-certificate endpoint, and the typed Install/GetInstalled/Delete helpers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from adapters.cli.app import app as cli_app
from adapters.http.server import HttpServer
from csms.ocpp.framing import validate
from csms.pki import station_certificates
from csms.pki.ocsp import hash_data
from csms.service import Loadstar
from csms.typed_calls import CommandsChannel
from tests.conftest import make_config
from tests.raw_client import RawClient, default_answer

V16, V201 = "ocpp1.6", "ocpp2.0.1"
BOOT = {
    V16: {"chargePointVendor": "V", "chargePointModel": "M"},
    V201: {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
}
NOW = datetime.now(UTC)


def accepting(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """A charger that takes the certificate it is sent."""
    if action == "CertificateSigned":
        return {"status": "Accepted"}
    return default_answer(action, payload)


async def booted(url: Any, cp_id: str, subprotocol: str,
                 answerer: Callable[[str, dict[str, Any]], dict[str, Any] | None] = accepting,
                 ) -> RawClient:
    c = await RawClient.connect(url(cp_id), subprotocol, answerer)
    assert (await c.ok("BootNotification", BOOT[subprotocol]))["status"] == "Accepted"
    return c


async def answered(c: RawClient, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Send `action`; it must get a CALLRESULT that the response schema accepts."""
    reply = await c.call(action, payload)
    assert reply[0] == 3, reply
    validate("1.6" if c.ws.subprotocol == V16 else "2.0.1", action, reply[2], response=True)
    return reply[2]


async def next_call(c: RawClient, action: str) -> dict[str, Any]:
    """The payload of the next CALL `action` the server sends (post-boot calls skipped)."""
    while True:
        call = await c.server_calls.get()
        if call[2] == action:
            return call[3]


def csr_of(common_name: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def public_der(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


async def events(server: Loadstar, cp_id: str, kind: str) -> list[dict[str, Any]]:
    async with server.store.db.execute(
            "SELECT payload FROM charger_events WHERE cp_id=? AND kind=? ORDER BY id",
            (cp_id, kind)) as cur:
        return [json.loads(r[0]) for r in await cur.fetchall()]


@pytest.mark.parametrize("subprotocol", [V16, V201])
async def test_a02_sign_certificate_is_answered_by_certificate_signed_from_our_ca(
        server: Loadstar, url: Any, subprotocol: str) -> None:
    cp_id = f"SIGN{subprotocol[-3:]}"
    c = await booted(url, cp_id, subprotocol)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = csr_of(cp_id, key)
    assert await answered(c, "SignCertificate", {"csr": csr}) == {"status": "Accepted"}
    signed = await next_call(c, "CertificateSigned")
    await server.commands.drain()  # the charger's answer is recorded
    await c.close()
    leaf, root = x509.load_pem_x509_certificates(signed["certificateChain"].encode())
    assert public_der(leaf.public_key()) == public_der(key.public_key())
    assert root == server.central.pki.ca.certificate  # type: ignore[union-attr]
    leaf.verify_directly_issued_by(root)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cp_id
    assert leaf.not_valid_before_utc <= datetime.now(UTC) < leaf.not_valid_after_utc
    if subprotocol == V201:
        assert signed["certificateType"] == "ChargingStationCertificate"
    else:
        assert "certificateType" not in signed
    [recorded] = [r for r in await server.store.list_commands(cp_id, limit=50)
                  if r.action == "CertificateSigned"]
    assert (recorded.status, recorded.response) == ("accepted", {"status": "Accepted"})
    [kept] = await events(server, cp_id, "SignCertificate")
    assert (kept["csr"], kept["status"], kept["serial"]) == \
        (csr, "Accepted", format(leaf.serial_number, "x"))


@pytest.mark.parametrize("subprotocol", [V16, V201])
async def test_a02_a_csr_for_another_charger_is_rejected(
        server: Loadstar, url: Any, subprotocol: str) -> None:
    cp_id = f"OTHER{subprotocol[-3:]}"
    c = await booted(url, cp_id, subprotocol)
    bad = csr_of("SOMEONE-ELSE", ec.generate_private_key(ec.SECP256R1()))
    answer = await answered(c, "SignCertificate", {"csr": bad})
    assert answer["status"] == "Rejected"
    if subprotocol == V201:
        assert answer["statusInfo"]["reasonCode"] == "InvalidCSR"
        # A V2G (ISO 15118-2) certificate needs a P-256 key: a CSR with RSA is refused too.
        rsa_csr = csr_of(cp_id, rsa.generate_private_key(65537, 2048))
        v2g = await answered(c, "SignCertificate", {"csr": rsa_csr,
                                                    "certificateType": "V2GCertificate"})
        assert (v2g["status"], v2g["statusInfo"]["reasonCode"]) == ("Rejected", "InvalidCSR")
    # No CertificateSigned followed the refusals: the first one the charger gets is for the
    # good CSR sent next (calls to a charger go out one at a time, in order).
    key = ec.generate_private_key(ec.SECP256R1())
    assert (await answered(c, "SignCertificate", {"csr": csr_of(cp_id, key)}))["status"] == \
        "Accepted"
    signed = await next_call(c, "CertificateSigned")
    await c.close()
    leaf = x509.load_pem_x509_certificates(signed["certificateChain"].encode())[0]
    assert public_der(leaf.public_key()) == public_der(key.public_key())
    kept = await events(server, cp_id, "SignCertificate")
    assert kept[0]["csr"] == bad and kept[0]["status"] == "Rejected"
    assert "not the charge point id" in kept[0]["reason"]


# -- a tiny real OCSP responder and contract-certificate endpoint ---------------------------


class HttpApp:
    """A real HTTP server on a free port, answering POSTs with `answer(body)` (in a thread)."""

    def __init__(self, answer: Callable[[bytes], tuple[int, str, bytes]]) -> None:
        self.bodies: list[bytes] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                app.bodies.append(body)
                status, kind, out = answer(body)
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def certificate(subject: str, key: Any, issuer: x509.Certificate | None, issuer_key: Any
                ) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
            .sign(issuer_key, hashes.SHA256()))


@pytest.fixture
def responder() -> Iterator[tuple[HttpApp, x509.Certificate, x509.Certificate]]:
    """An OCSP responder for a small CA of its own: (server, its CA, a leaf it knows)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("OCSP test CA", ca_key, None, ca_key)
    leaf = certificate("EV-1", ec.generate_private_key(ec.SECP256R1()), ca, ca_key)

    def answer(body: bytes) -> tuple[int, str, bytes]:
        request = ocsp.load_der_ocsp_request(body)
        assert request.serial_number == leaf.serial_number
        response = (ocsp.OCSPResponseBuilder()
                    .add_response(cert=leaf, issuer=ca, algorithm=hashes.SHA256(),
                                  cert_status=ocsp.OCSPCertStatus.GOOD, this_update=NOW,
                                  next_update=NOW + timedelta(hours=1), revocation_time=None,
                                  revocation_reason=None)
                    .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
                    .sign(ca_key, hashes.SHA256()))
        return 200, "application/ocsp-response", response.public_bytes(
            serialization.Encoding.DER)

    app = HttpApp(answer)
    yield app, ca, leaf
    app.close()


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ocsp_request_data(ca: x509.Certificate, leaf: x509.Certificate, url: str) -> dict[str, str]:
    """2.0.1 OCSPRequestData naming `leaf` under `ca`, computed here from first principles."""
    key_bits = ca.public_key().public_bytes(serialization.Encoding.X962,
                                            serialization.PublicFormat.UncompressedPoint)
    return {"hashAlgorithm": "SHA256",
            "issuerNameHash": hashlib.sha256(ca.subject.public_bytes()).hexdigest(),
            "issuerKeyHash": hashlib.sha256(key_bits).hexdigest(),
            "serialNumber": format(leaf.serial_number, "x"), "responderURL": url}


async def test_m06_certificate_status_is_asked_of_the_ocsp_responder(
        server: Loadstar, url: Any,
        responder: tuple[HttpApp, x509.Certificate, x509.Certificate]) -> None:
    app, ca, leaf = responder
    data = ocsp_request_data(ca, leaf, app.url)
    c = await booted(url, "OCSP1", V201)
    answer = await answered(c, "GetCertificateStatus", {"ocspRequestData": data})
    assert answer["status"] == "Accepted"
    result = ocsp.load_der_ocsp_response(base64.b64decode(answer["ocspResult"]))
    assert result.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert result.serial_number == leaf.serial_number
    # What the responder was asked names the certificate as the charger named it.
    [asked] = [ocsp.load_der_ocsp_request(b) for b in app.bodies]
    assert (asked.issuer_name_hash.hex(), asked.issuer_key_hash.hex()) == \
        (data["issuerNameHash"], data["issuerKeyHash"])
    # A responder that cannot be reached: Failed, no ocspResult.
    gone = {**data, "responderURL": f"http://127.0.0.1:{free_port()}/"}
    failed = await answered(c, "GetCertificateStatus", {"ocspRequestData": gone})
    await c.close()
    assert failed["status"] == "Failed" and "ocspResult" not in failed
    assert [e["ocspRequestData"]["responderURL"]
            for e in await events(server, "OCSP1", "GetCertificateStatus")] == \
        [app.url, gone["responderURL"]]


async def test_c07_an_emaid_is_authorized_only_with_its_contract_certificate_known_good(
        server: Loadstar, url: Any,
        responder: tuple[HttpApp, x509.Certificate, x509.Certificate]) -> None:
    app, ca, leaf = responder
    good = ocsp_request_data(ca, leaf, app.url)
    token = {"idToken": "DE*LDS*C12345678*9", "type": "eMAID"}
    c = await booted(url, "EMAID1", V201)
    ok = await answered(c, "Authorize", {"idToken": token,
                                         "iso15118CertificateHashData": [good]})
    assert ok["certificateStatus"] == "Accepted" and ok["idTokenInfo"]["status"] == "Accepted"
    assert len(app.bodies) == 1  # the responder was really asked
    # No responder answers: the chain's status is unknown, and the token does not authorize.
    gone = {**good, "responderURL": f"http://127.0.0.1:{free_port()}/"}
    refused = await answered(c, "Authorize", {"idToken": token,
                                              "iso15118CertificateHashData": [gone]})
    await c.close()
    assert refused["certificateStatus"] == "CertChainError"
    assert refused["idTokenInfo"]["status"] == "Invalid"


async def test_c07_an_emaid_with_its_certificate_chain_is_checked_at_the_ocsp_url_it_names(
        server: Loadstar, url: Any) -> None:
    issued: dict[str, x509.Certificate] = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("MO test CA", ca_key, None, ca_key)

    def answer(body: bytes) -> tuple[int, str, bytes]:
        request = ocsp.load_der_ocsp_request(body)
        leaf = issued["leaf"]
        status = ocsp.OCSPCertStatus.GOOD if request.serial_number == leaf.serial_number \
            else ocsp.OCSPCertStatus.UNKNOWN
        response = (ocsp.OCSPResponseBuilder()
                    .add_response(cert=leaf, issuer=ca, algorithm=hashes.SHA256(),
                                  cert_status=status, this_update=NOW,
                                  next_update=NOW + timedelta(hours=1), revocation_time=None,
                                  revocation_reason=None)
                    .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
                    .sign(ca_key, hashes.SHA256()))
        return 200, "application/ocsp-response", response.public_bytes(
            serialization.Encoding.DER)

    app = HttpApp(answer)
    try:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DE-LDS-C12345678-9")])
        issued["leaf"] = (
            x509.CertificateBuilder().subject_name(name).issuer_name(ca.subject)
            .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
            .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(app.url))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
        chain = "".join(cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
                        for cert in (issued["leaf"], ca))
        token = {"idToken": "DE*LDS*C12345678*9", "type": "eMAID"}
        c = await booted(url, "EMAID2", V201)
        ok = await answered(c, "Authorize", {"idToken": token, "certificate": chain})
        # A chain with no issuer to name the leaf under cannot be checked.
        alone = await answered(c, "Authorize", {"idToken": token, "certificate": chain[
            :chain.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")]})
        await c.close()
    finally:
        app.close()
    assert ok["certificateStatus"] == "Accepted" and ok["idTokenInfo"]["status"] == "Accepted"
    [asked] = [ocsp.load_der_ocsp_request(b) for b in app.bodies]
    assert asked.serial_number == issued["leaf"].serial_number
    assert alone["certificateStatus"] == "CertChainError"
    assert alone["idTokenInfo"]["status"] == "Invalid"


@pytest.fixture
def contract_endpoint() -> Iterator[HttpApp]:
    def answer(body: bytes) -> tuple[int, str, bytes]:
        asked = json.loads(body)
        if asked["exiRequest"] == "DOWN":
            return 503, "text/plain", b"pool down"
        return 200, "application/json", json.dumps(
            {"exiResponse": "RESP-" + asked["exiRequest"]}).encode()

    app = HttpApp(answer)
    yield app
    app.close()


@pytest.fixture
async def contract_server(tmp_path: Path, contract_endpoint: HttpApp
                          ) -> AsyncIterator[Loadstar]:
    config = make_config(tmp_path)
    config.certificates.contract_certificate_url = contract_endpoint.url
    service = Loadstar(config)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def test_get_15118_ev_certificate_is_forwarded_to_the_contract_endpoint(
        contract_server: Loadstar, contract_endpoint: HttpApp) -> None:
    c = await booted(lambda cp: f"ws://127.0.0.1:{contract_server.ocpp_port}/ocpp/{cp}",
                     "EVC1", V201)
    request = {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
               "exiRequest": "gAEBAgME"}
    answer = await answered(c, "Get15118EVCertificate", request)
    assert answer == {"status": "Accepted", "exiResponse": "RESP-gAEBAgME"}
    # An endpoint that fails: Failed with an empty exiResponse.
    down = await answered(c, "Get15118EVCertificate", {**request, "exiRequest": "DOWN"})
    await c.close()
    assert (down["status"], down["exiResponse"]) == ("Failed", "")
    assert [json.loads(b) for b in contract_endpoint.bodies] == [
        {"chargingStationId": "EVC1", **request},
        {"chargingStationId": "EVC1", **request, "exiRequest": "DOWN"}]


# -- typed helpers: InstallCertificate, GetInstalledCertificateIds, DeleteCertificate -------


class CertificateStore:
    """What a charger does with the certificates it is given: keeps, lists and deletes them,
    naming each by hash data it computes itself (RFC 6960 CertID, SHA-256)."""

    def __init__(self, subprotocol: str) -> None:
        self.v16 = subprotocol == V16
        self.held: list[tuple[str, dict[str, str]]] = []

    @staticmethod
    def hash_data(pem: str) -> dict[str, str]:
        cert = x509.load_pem_x509_certificate(pem.encode())
        bits = cert.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
        return {"hashAlgorithm": "SHA256",
                "issuerNameHash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
                "issuerKeyHash": hashlib.sha256(bits).hexdigest(),
                "serialNumber": format(cert.serial_number, "x")}

    def __call__(self, action: str, p: dict[str, Any]) -> dict[str, Any] | None:
        if action == "InstallCertificate":
            self.held.append((p["certificateType"], self.hash_data(p["certificate"])))
            return {"status": "Accepted"}
        if action == "GetInstalledCertificateIds":
            wanted = p.get("certificateType")
            wanted = [wanted] if isinstance(wanted, str) else wanted
            found = [(t, h) for t, h in self.held if not wanted or t in wanted]
            status = "Accepted" if found else "NotFound"
            if self.v16:
                return {"status": status, "certificateHashData": [h for _, h in found]}
            return {"status": status, "certificateHashDataChain": [
                {"certificateType": t, "certificateHashData": h} for t, h in found]}
        if action == "DeleteCertificate":
            before = len(self.held)
            self.held = [(t, h) for t, h in self.held if h != p["certificateHashData"]]
            return {"status": "Accepted" if len(self.held) < before else "NotFound"}
        return default_answer(action, p)


@pytest.mark.parametrize("subprotocol", [V16, V201])
async def test_m05_m03_m04_install_list_and_delete_a_root_certificate(
        server: Loadstar, url: Any, subprotocol: str) -> None:
    cp_id = f"ROOTS{subprotocol[-3:]}"
    held = CertificateStore(subprotocol)
    c = await booted(url, cp_id, subprotocol, held)
    key = ec.generate_private_key(ec.SECP256R1())
    root = certificate("Operator root", key, None, key).public_bytes(
        serialization.Encoding.PEM).decode()
    commands = CommandsChannel(server.commands, server.store)
    installed = await station_certificates.install_certificate(
        commands, cp_id, "CSMSRootCertificate", root)
    assert installed.ok
    # 1.6 calls the CSMS root by its own name.
    assert held.held[0][0] == ("CentralSystemRootCertificate" if subprotocol == V16
                               else "CSMSRootCertificate")
    listed = await station_certificates.get_installed_certificate_ids(
        commands, cp_id, ["CSMSRootCertificate"])
    assert listed.ok
    ours = hash_data(root)
    if subprotocol == V16:
        assert listed.response["certificateHashData"] == [ours]  # type: ignore[index]
    else:
        assert [x["certificateHashData"] for x in listed.response[  # type: ignore[index]
            "certificateHashDataChain"]] == [ours]
    deleted = await station_certificates.delete_certificate(commands, cp_id, ours)
    assert deleted.ok and held.held == []
    again = await station_certificates.get_installed_certificate_ids(
        commands, cp_id, ["CSMSRootCertificate"])
    await c.close()
    assert again.response["status"] == "NotFound"  # type: ignore[index]
    sent = [r.action for r in await server.store.list_commands(cp_id, limit=50)]
    assert {"InstallCertificate", "GetInstalledCertificateIds", "DeleteCertificate"} <= set(sent)


async def test_a_root_type_the_chargers_version_lacks_is_refused_before_sending(
        server: Loadstar, url: Any) -> None:
    c = await booted(url, "V2GROOT16", V16, CertificateStore(V16))
    channel = CommandsChannel(server.commands, server.store)
    key = ec.generate_private_key(ec.SECP256R1())
    root = certificate("V2G root", key, None, key).public_bytes(
        serialization.Encoding.PEM).decode()
    with pytest.raises(ValueError, match="1.6 has no certificate type"):
        await station_certificates.install_certificate(channel, "V2GROOT16",
                                                       "V2GRootCertificate", root)
    with pytest.raises(ValueError, match="not a PEM"):
        await station_certificates.install_certificate(channel, "V2GROOT16",
                                                       "CSMSRootCertificate", "nonsense")
    await c.close()
    assert [r for r in await server.store.list_commands("V2GROOT16", limit=50)
            if r.action == "InstallCertificate"] == []


@pytest.mark.parametrize("subprotocol", [V16, V201])
async def test_m05_m03_m04_the_operator_cli_installs_lists_and_deletes_through_the_server(
        server: Loadstar, url: Any, subprotocol: str, tmp_path: Path, http: HttpServer) -> None:
    cp_id = f"CLI{subprotocol[-3:]}"
    held = CertificateStore(subprotocol)
    c = await booted(url, cp_id, subprotocol, held)
    key = (await server.api_keys.create(("write",), datetime.now(UTC))).key
    config = tmp_path / "cli.toml"
    config.write_text(f'[store]\npath = "{server.config.store.path}"\n')
    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = tmp_path / "root.pem"
    root.write_bytes(certificate("Operator root", ca_key, None, ca_key).public_bytes(
        serialization.Encoding.PEM))
    common = ["-c", str(config), "--api-key", key, "--url", f"http://127.0.0.1:{http.port}"]

    def printed(out: str) -> Any:
        """The JSON the verb printed (the server, in this process, logs to the same stdout)."""
        lines = out.splitlines()
        start = next(i for i, line in enumerate(lines) if line in ("{", "["))
        end = next(i for i in range(start, len(lines)) if lines[i] in ("}", "]"))
        return json.loads("\n".join(lines[start:end + 1]))

    async def cli(*args: str) -> Any:
        # The verb runs its own event loop, as from a shell, while the server serves here.
        return await asyncio.to_thread(CliRunner().invoke, cli_app, ["certificate", *args])

    try:
        done = await cli("install", cp_id, str(root), "--type", "CSMSRootCertificate", *common)
        assert done.exit_code == 0, done.output
        assert printed(done.stdout) == {"status": "Accepted"}
        assert held.held == [("CentralSystemRootCertificate" if subprotocol == V16
                              else "CSMSRootCertificate", held.hash_data(root.read_text()))]
        listed = await cli("list", cp_id, "--type", "CSMSRootCertificate", *common)
        assert listed.exit_code == 0, listed.output
        chain = printed(listed.stdout)
        named = chain["certificateHashData"] if subprotocol == V16 else \
            [x["certificateHashData"] for x in chain["certificateHashDataChain"]]
        assert named == [held.hash_data(root.read_text())]
        gone = await cli("delete", cp_id, "--pem", str(root), *common)
        assert gone.exit_code == 0 and printed(gone.stdout) == {"status": "Accepted"}
        assert held.held == []
        ca = await cli("ca", "-c", str(config))
        assert server.central.pki.ca.certificate_pem in ca.stdout  # type: ignore[union-attr]
    finally:
        await c.close()
