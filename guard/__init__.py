"""Orchestration, provenance, verification and the `guard` command.

Kept import-light: submodules load torch, c2pa or models only when used.
"""

__version__ = "0.1.0"
