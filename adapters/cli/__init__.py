"""The `loadstar` command: the composition root, the outermost layer.

It is the one place that knows every package: it builds the core through
`csms.service.Loadstar` (store, OCPP server, planner, commands), the simulators for
`simulate`, and runs what it built on one event loop.

- `app.py`: the typer app and its verbs (options, output, exit codes);
- `lifecycle.py`: `serve`: start what runs, wait for a signal or a fatal failure, stop it
  within the shutdown timeout, end the process cleanly;
- `simulate.py`: `simulate`: a fleet of simulated chargers against a running CSMS.
"""
