"""Generation: diffusers pipelines loaded by hub id or local folder, device and dtype, seeds, text-to-image
and image-to-image. Knows nothing of policies or provenance (that is `guard.generate`)."""

from generation.devices import DeviceChoice, choose_device
from generation.errors import GenerationError, ModelLoadError
from generation.loading import for_task, load_pipeline
from generation.pipeline import Generated, GenerationOptions, generate

__all__ = [
    "DeviceChoice",
    "Generated",
    "GenerationError",
    "GenerationOptions",
    "ModelLoadError",
    "choose_device",
    "for_task",
    "generate",
    "load_pipeline",
]
