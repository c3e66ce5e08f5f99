"""The environment variables the generation package reads: none of its own.

Whether models may be fetched is the Hugging Face libraries' own setting (`HF_HUB_OFFLINE`,
`TRANSFORMERS_OFFLINE`, `DIFFUSERS_OFFLINE`), honoured as they define it.
"""

SETTINGS: dict[str, tuple[str, str]] = {}
