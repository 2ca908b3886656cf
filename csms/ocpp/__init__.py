"""The OCPP edge: framing, call correlation, and per-version translation (v16, v201)."""
