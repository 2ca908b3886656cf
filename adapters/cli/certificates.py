"""`loadstar certificate ...`: the certificates a charger keeps (InstallCertificate,
GetInstalledCertificateIds, DeleteCertificate) and Loadstar's own CA certificate.

The charger verbs talk to the running server over its HTTP API (the OCPP relay,
`POST /v2/ocpp_messages/{id}` with a `write` API key), so the call goes out through the
server's command recording; the payload is built for the charger's version by
`csms.pki.station_certificates`, the one place that knows each version's names.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from adapters.cli.lifecycle import say
from csms.config import Config
from csms.pki import station_certificates as certs
from csms.pki.service import ca_paths
from csms.relay import PROTOCOLS

certificate = typer.Typer(help="Certificates of chargers and Loadstar's CA.",
                          no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="config.toml to use")]
ApiKeyOpt = Annotated[str | None, typer.Option(
    "--api-key", help="an API key with the write scope (else $LOADSTAR_API_KEY)")]
UrlOpt = Annotated[str | None, typer.Option(
    "--url", help="the server's HTTP base URL (else [http] host and port of the config)")]


def _settings(config: Path | None) -> Config:
    from adapters.cli.app import _config  # the one reader of config.toml for every verb
    return _config(config)


def _version(cfg: Config, cp_id: str) -> str:
    """The OCPP version `cp_id` last spoke; exit 1 when it never connected."""
    from adapters.cli.app import _with_store
    records = asyncio.run(_with_store(cfg, lambda s: s.list_charge_points()))
    protocol = next((r.protocol for r in records if r.cp_id == cp_id), None)
    if protocol not in PROTOCOLS:
        say(f"charge point {cp_id!r} has not connected yet: its OCPP version is unknown")
        raise typer.Exit(1)
    return PROTOCOLS[protocol]


def _send(cfg: Config, url: str | None, api_key: str | None, cp_id: str, action: str,
          payload: dict[str, Any]) -> None:
    """Relay the CALL through the running server; print the charger's answer, exit 1 when
    there is none (or it is a CALLERROR)."""
    key = api_key or os.environ.get("LOADSTAR_API_KEY")
    if not key:
        say("--api-key (or $LOADSTAR_API_KEY) is required: an API key with the write scope")
        raise typer.Exit(2)
    base = url or f"http://{cfg.http.host}:{cfg.http.port}"
    frame = [2, uuid.uuid4().hex, action, payload]
    try:
        reply = httpx.post(f"{base.rstrip('/')}/v2/ocpp_messages/{cp_id}", json=frame,
                           params={"queue": "false"},
                           headers={"Authorization": f"Bearer {key}"},
                           timeout=cfg.ocpp.call_timeout_s + 10)
    except httpx.HTTPError as e:
        say(f"cannot reach the server at {base}: {type(e).__name__}")
        raise typer.Exit(1) from None
    body = reply.json() if reply.headers.get("content-type", "").startswith(
        "application/json") else {}
    data = body.get("data")
    if reply.status_code != 200 or not isinstance(data, list) or not data:
        say(f"{action} not answered (HTTP {reply.status_code}): "
            f"{json.dumps(body.get('data') or body.get('message'))}")
        raise typer.Exit(1)
    response = data[0].get("response") or []
    typer.echo(json.dumps(response[2] if len(response) == 3 else response, indent=2))
    if data[0].get("responseType") != "CallResult":
        raise typer.Exit(1)


def _built(build: Any, *args: Any) -> dict[str, Any]:
    try:
        return dict(build(*args))
    except ValueError as e:
        say(str(e))
        raise typer.Exit(2) from None


@certificate.command("install")
def install(cp_id: str, pem_file: Path, certificate_type: Annotated[str, typer.Option(
        "--type", help="CSMSRootCertificate, ManufacturerRootCertificate, V2GRootCertificate "
                       "or MORootCertificate (the last two: 2.0.1 only)")],
            config: ConfigOpt = None, api_key: ApiKeyOpt = None, url: UrlOpt = None) -> None:
    """Install a root certificate (PEM file) on a charger."""
    cfg = _settings(config)
    version = _version(cfg, cp_id)
    payload = _built(certs.install_payload, version, certificate_type, pem_file.read_text())
    _send(cfg, url, api_key, cp_id, "InstallCertificate", payload)


@certificate.command("list")
def installed(cp_id: str, certificate_type: Annotated[list[str] | None, typer.Option(
        "--type", help="certificate types to list (1.6: exactly one; 2.0.1: default all)")
    ] = None, config: ConfigOpt = None, api_key: ApiKeyOpt = None, url: UrlOpt = None) -> None:
    """Ask a charger which certificates it holds (their hash data)."""
    cfg = _settings(config)
    version = _version(cfg, cp_id)
    payload = _built(certs.get_installed_payload, version, certificate_type)
    _send(cfg, url, api_key, cp_id, "GetInstalledCertificateIds", payload)


@certificate.command("delete")
def delete(cp_id: str, pem_file: Annotated[Path | None, typer.Option(
        "--pem", help="the certificate to delete (a root: its own issuer)")] = None,
           hash_data: Annotated[str | None, typer.Option(
               "--hash-data", help="its certificateHashData as JSON (as `list` shows it)")
           ] = None,
           config: ConfigOpt = None, api_key: ApiKeyOpt = None, url: UrlOpt = None) -> None:
    """Delete a certificate from a charger, named by its PEM or its hash data."""
    cfg = _settings(config)
    if (pem_file is None) == (hash_data is None):
        say("give exactly one of --pem and --hash-data")
        raise typer.Exit(2)
    try:
        named = certs.hash_data(pem_file.read_text()) if pem_file is not None \
            else json.loads(hash_data or "")
    except ValueError as e:
        say(f"cannot read the certificate to delete: {e}")
        raise typer.Exit(2) from None
    _send(cfg, url, api_key, cp_id, "DeleteCertificate", certs.delete_payload(named))


@certificate.command("ca")
def ca_certificate(config: ConfigOpt = None) -> None:
    """Print Loadstar's CA certificate (PEM), the root chargers' certificates chain to."""
    cfg = _settings(config)
    paths = ca_paths(cfg.ca, cfg.store.path)
    if paths is None or not paths[0].exists():
        say("no CA certificate yet: `loadstar serve` makes one on its first start")
        raise typer.Exit(1)
    typer.echo(paths[0].read_text(), nl=False)
