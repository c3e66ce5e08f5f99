"""Device and dtype choice: CUDA with float16, Apple MPS with float16, CPU with float32.

Half precision on CPU is refused: several ops (LayerNorm, GroupNorm, some convolutions) are missing or very
slow there in float16, so diffusers itself loads in float32 unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from generation.errors import ModelLoadError

DTYPES = ("float16", "bfloat16", "float32")
DEFAULT_DTYPE = {"cuda": "float16", "mps": "float16", "cpu": "float32"}
"""The dtype picked for each device when none is asked for."""


@dataclass(frozen=True)
class DeviceChoice:
    """Where the model runs and in which precision."""

    device: str
    dtype_name: str

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)

    def to_dict(self) -> dict[str, str]:
        return {"device": self.device, "dtype": self.dtype_name}


def available_device() -> str:
    """`cuda` when torch sees a GPU, else `mps` on Apple silicon, else `cpu`."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def choose_device(device: str | None = None, dtype: str | None = None) -> DeviceChoice:
    """The device (`auto`/None, `cuda`, `cuda:N`, `mps`, `cpu`) and dtype to use, checked against this machine."""
    import torch

    requested = (device or "auto").strip().lower()
    if requested == "auto":
        requested = available_device()
    kind = requested.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {requested!r} was asked for but torch sees no CUDA GPU here; use --device cpu (slow) or "
            "install a CUDA build of torch."
        )
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("Device 'mps' was asked for but Apple MPS is not available here; use --device cpu.")
    if kind not in DEFAULT_DTYPE:
        raise ModelLoadError(f"Unknown device {requested!r}; use auto, cuda, cuda:N, mps or cpu.")
    dtype_name = (dtype or DEFAULT_DTYPE[kind]).strip().lower()
    if dtype_name not in DTYPES:
        raise ModelLoadError(f"Unknown dtype {dtype_name!r}; use one of {', '.join(DTYPES)}.")
    if kind == "cpu" and dtype_name != "float32":
        raise ModelLoadError(f"{dtype_name} is not supported for generation on the CPU; use float32 (the default).")
    return DeviceChoice(device=requested, dtype_name=dtype_name)
