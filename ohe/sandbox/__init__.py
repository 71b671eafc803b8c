"""Faithful simulators of the systems OHE talks to: provider APIs and a FHIR server.

Each sandbox is a real HTTP server that runs as its own process (``python -m ohe.sandbox.<name>``)
and imports nothing from the rest of ``ohe``: it stands in for an external system, so it must
not share code (or bugs) with the client that talks to it.
"""
