"""`python -m adapters.cli ...` runs the `loadstar` command."""

from adapters.cli.app import app

app()
