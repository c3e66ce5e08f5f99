"""Provenance, in two halves: `watermarks` (the scheme registry, ours, dwtDct, the known marks) and
`credentials` (C2PA signing and reading, keys, the manifest definition, the manifest store, fingerprints).

Import the submodules you need; this package imports nothing heavy itself.
"""
