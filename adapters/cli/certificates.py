"""`loadstar certificate ...`: the certificates a charger keeps (InstallCertificate,
GetInstalledCertificateIds, DeleteCertificate) and Loadstar's own CA certificate.

The typed helpers of `csms.pki.station_certificates` run here against the shared store; their
CALLs go through the running server's HTTP relay (recorded there as commands).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from adapters.cli.authlist import run_with_relay
from adapters.cli.lifecycle import say
from adapters.cli.options import ConfigOpt, KeyOpt, UrlOpt
from adapters.cli.relay_channel import RelayChannel
from csms.commands import CommandResult
from csms.config import Config
from csms.pki import ocsp
from csms.pki import station_certificates as certs
from csms.pki.service import ca_paths
from csms.store import Store

certificate = typer.Typer(help="Certificates of chargers and Loadstar's CA.",
                          no_args_is_help=True)



def _answered(result: CommandResult) -> None:
    """Print the charger's answer; exit 1 when it is not a plain Accepted."""
    typer.echo(json.dumps(result.response if result.response is not None
                          else {"status": result.status, "error": result.error}, indent=2))
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer, config_of: Callable[[Path | None], Config],
             with_store: Callable[[Config, Any], Any]) -> None:
    """Add `loadstar certificate ...` to `app`."""
    app.add_typer(certificate, name="certificate")

    def run(config: Path | None, url: str | None, api_key: str | None,
            call: Callable[[RelayChannel], Any]) -> None:
        async def go(store: Store, channel: RelayChannel) -> CommandResult:
            try:
                result: CommandResult = await call(channel)
            except ValueError as e:  # a type the version lacks, a file that is no certificate
                say(str(e))
                raise typer.Exit(2) from None
            return result

        _answered(run_with_relay(config_of(config), url, api_key, go, with_store))

    @certificate.command("install")
    def install(cp_id: str, pem_file: Path, certificate_type: Annotated[str, typer.Option(
            "--type", help="CSMSRootCertificate, ManufacturerRootCertificate, "
                           "V2GRootCertificate or MORootCertificate (the last two: 2.0.1)")],
                config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Install a root certificate (PEM file) on a charger."""
        pem = pem_file.read_text()
        run(config, url, api_key, lambda channel: certs.install_certificate(
            channel, cp_id, certificate_type, pem))

    @certificate.command("list")
    def installed(cp_id: str, certificate_type: Annotated[list[str] | None, typer.Option(
            "--type", help="types to list (1.6: exactly one; 2.0.1: default all)")] = None,
                  config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Ask a charger which certificates it holds (their hash data)."""
        run(config, url, api_key, lambda channel: certs.get_installed_certificate_ids(
            channel, cp_id, certificate_type))

    @certificate.command("delete")
    def delete(cp_id: str, pem_file: Annotated[Path | None, typer.Option(
            "--pem", help="the certificate to delete (a root: its own issuer)")] = None,
               hash_data: Annotated[str | None, typer.Option(
                   "--hash-data", help="its certificateHashData as JSON (as `list` shows it)")
               ] = None,
               config: ConfigOpt = None, url: UrlOpt = None, api_key: KeyOpt = None) -> None:
        """Delete a certificate from a charger, named by its PEM or its hash data."""
        if (pem_file is None) == (hash_data is None):
            say("give exactly one of --pem and --hash-data")
            raise typer.Exit(2)
        try:
            named = ocsp.hash_data(pem_file.read_text()) if pem_file is not None \
                else json.loads(hash_data or "")
        except ValueError as e:
            say(f"cannot read the certificate to delete: {e}")
            raise typer.Exit(2) from None
        run(config, url, api_key,
            lambda channel: certs.delete_certificate(channel, cp_id, named))

    @certificate.command("ca")
    def ca_certificate(config: ConfigOpt = None) -> None:
        """Print Loadstar's CA certificate (PEM), the root chargers' certificates chain to."""
        cfg = config_of(config)
        paths = ca_paths(cfg.ca, cfg.store.path)
        if paths is None or not paths[0].exists():
            say("no CA certificate yet: `loadstar serve` makes one on its first start")
            raise typer.Exit(1)
        typer.echo(paths[0].read_text(), nl=False)
