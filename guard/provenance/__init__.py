"""Provenance: signing identities, C2PA Content Credentials, the manifest store, fingerprints, watermarks.

Import the submodules you need (`keys`, `manifest`, `credentials`, `store`, `fingerprint`, `watermark`);
this package imports nothing heavy itself.
"""
