"""Loadstar's public-key infrastructure for chargers: its own small CA, CSR checks, OCSP
look-ups and the contract-certificate endpoint (issue 12 point 8)."""
