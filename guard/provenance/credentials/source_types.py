"""Digital source types: IPTC's vocabulary of how a picture was made (plus C2PA's additions), as one enum.

C2PA manifests, XMP (`Iptc4xmpExt:DigitalSourceType`) and IPTC photo metadata all name a source type by a
URI in IPTC's namespace (C2PA adds two terms in its own); everything in this project reads and writes them
through `DigitalSourceType`, so the namespace and the spelling of each term live here only.
"""

from __future__ import annotations

from enum import StrEnum

IPTC_NAMESPACE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
C2PA_NAMESPACE = "http://c2pa.org/digitalsourcetype/"


class DigitalSourceType(StrEnum):
    """A digital source type by its short name (the last segment of its URI)."""

    DIGITAL_CAPTURE = "digitalCapture"
    COMPUTATIONAL_CAPTURE = "computationalCapture"
    COMPOSITE_CAPTURE = "compositeCapture"
    NEGATIVE_FILM = "negativeFilm"
    POSITIVE_FILM = "positiveFilm"
    PRINT = "print"
    HUMAN_EDITS = "humanEdits"
    MINOR_HUMAN_EDITS = "minorHumanEdits"
    DIGITAL_ART = "digitalArt"
    DIGITAL_CREATION = "digitalCreation"
    COMPOSITE = "composite"
    SCREEN_CAPTURE = "screenCapture"
    VIRTUAL_RECORDING = "virtualRecording"
    DATA_DRIVEN_MEDIA = "dataDrivenMedia"
    SOFTWARE_IMAGE = "softwareImage"
    ALGORITHMIC_MEDIA = "algorithmicMedia"
    ALGORITHMICALLY_ENHANCED = "algorithmicallyEnhanced"
    TRAINED_ALGORITHMIC_MEDIA = "trainedAlgorithmicMedia"
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = "compositeWithTrainedAlgorithmicMedia"
    COMPOSITE_SYNTHETIC = "compositeSynthetic"
    TRAINED_ALGORITHMIC_DATA = "trainedAlgorithmicData"
    EMPTY = "empty"

    @property
    def uri(self) -> str:
        """The full URI, in C2PA's namespace for its own terms and IPTC's for the rest."""
        namespace = C2PA_NAMESPACE if self in C2PA_TERMS else IPTC_NAMESPACE
        return namespace + self.value

    @classmethod
    def from_uri(cls, uri: str | None) -> DigitalSourceType | None:
        """The type a URI (or a bare short name) names; None for an empty or unknown one."""
        name = short_name(uri)
        try:
            return cls(name) if name else None
        except ValueError:
            return None


C2PA_TERMS = frozenset({DigitalSourceType.TRAINED_ALGORITHMIC_DATA, DigitalSourceType.EMPTY})
"""Terms C2PA defines in its own namespace rather than IPTC's."""

GENERATIVE_AI = frozenset(
    {
        DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA,
        DigitalSourceType.COMPOSITE_SYNTHETIC,
        DigitalSourceType.TRAINED_ALGORITHMIC_DATA,
    }
)
"""Made by a generative model."""

AI_EDITED = frozenset(
    {DigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA, DigitalSourceType.ALGORITHMICALLY_ENHANCED}
)
"""A picture changed or composited with a trained model."""

CAPTURED = frozenset(
    {DigitalSourceType.DIGITAL_CAPTURE, DigitalSourceType.COMPUTATIONAL_CAPTURE, DigitalSourceType.COMPOSITE_CAPTURE}
)
"""Captured by a camera or sensor."""


def short_name(uri: str | None) -> str | None:
    """The last segment of a source type URI (`.../trainedAlgorithmicMedia` -> `trainedAlgorithmicMedia`)."""
    if not uri:
        return None
    return uri.strip().rstrip("/").rsplit("/", 1)[-1] or None
