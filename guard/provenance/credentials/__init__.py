"""Content Credentials: C2PA signing and reading (`c2pa`), signing identities (`keys`), the manifest
definition (`manifest`), the manifest store (`store`) and the perceptual fingerprints it is searched by
(`fingerprint`). Import the submodules you need."""
