"""Watermarks other generators embed: Stable Diffusion v1/v2, SDXL (invisible-watermark's dwtDct) and rivaGan.

Stable Diffusion's reference scripts mark every output with invisible-watermark's `dwtDct`, a fixed message
repeated over the image: `b"StableDiffusionV1"` (CompVis/stable-diffusion, scripts/txt2img.py) and `b"SDV2"`
(Stability-AI/stablediffusion). Stability's generative-models and diffusers' `StableDiffusionXLWatermarker`
mark SDXL outputs with the fixed 48-bit `WATERMARK_MESSAGE`, through the same codec but on float pixels.

dwtDct decodes imperfectly even on an untouched image (a few bits in ten can flip), so an exact match is the
wrong test, and counting matching bits throws away how clearly each bit was read. Every bit is the majority
of many block votes (128 per bit for SD v2 in a 512² image); a fixed-message scheme is tested on the share
of blocks voting 1 for each bit: with the mark, the bits the message sets to 1 get the highest shares. The
statistic is the rank sum W of the message's 1-bits among the n shares (the Wilcoxon-Mann-Whitney test),
and the image is marked when W is so high that, were the bit positions exchangeable (no mark: nothing ties
a bit's share to what the message says there), a sum this large would come up with chance at most
`FALSE_POSITIVE_RATE` (1e-6): the exact null distribution, every choice of which positions are the 1-bits
being equally likely, is counted once per message (`rank_sum_tails`). Ties among shares are broken against
the message (its 1-bits take the lower ranks), so a flat or grey image, which reads every share alike,
scores the lowest W possible; the test does not depend on how many ones an image reads overall (on
unmarked photos dwtDct reads mostly zeros). This finds every untouched SD v1, SD v2 and SDXL mark in the
benchmark, where requiring k of n bits found 61-89 %; `worst_case_tails` keeps the bit-count bound, which
rivaGan's test still uses.

Exchangeability fails for pictures that repeat: dwtDct assigns block n (row-major over 8x8-pixel blocks) to
bit n mod N, so a pattern repeating every few blocks makes a bit's share depend on its index modulo that
period — and the message, ASCII text for SD v1, has structure modulo 8 (every byte's top bit is 0). Stripe
images with a 32-pixel period reached p = 7e-7 for SD v1 with the plain test (and 7 of 600 were "detected"
by the bit count). So the test is stratified (van Elteren): bits are ranked only against bits whose index
is the same modulo `strata`; since 8 divides every message length here, n mod 8 is a function of the block's
row and column modulo 8, and any pattern repeating every 1, 2, 4 or 8 blocks (8-64 px) weighs all bits of a
stratum alike. The statistic is the sum of the strata's rank sums; its null distribution is the convolution
of theirs. SD v1 and SDXL use 8 strata (best possible p: 1e-25 and 1e-9); SD v2's 32 bits afford only
2 (8 would leave a perfect reading at p = 1.6e-4).

rivaGan carries an arbitrary 32-bit payload that we cannot know in advance, so there is no message to match:
its decoder reports the 32 bits and makes no detection call, unless it is given the payload to look for
(`RivaGan.decode_expecting`, a k-of-n bit count with the worst-case bound). See `RivaGan` for why the
logits' margins are not used.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

from guard.errors import GuardError
from guard.images import rgb_pixels
from guard.provenance.watermarks import WatermarkResult, shared
from guard.provenance.watermarks.dwtdct import MIN_PIXELS, bgr_array, block_votes, tally

FALSE_POSITIVE_RATE = 1e-6
"""Largest chance per image and scheme that a decoder reports a mark in an image without one."""

SDXL_WATERMARK_MESSAGE = 0b101100111110110010010000011110111011000110011110
"""The 48-bit message of Stability's generative-models and diffusers' StableDiffusionXLWatermarker."""


def bits_of(data: bytes) -> np.ndarray:
    """Bytes as a bool array, most significant bit first (invisible-watermark's order)."""
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(bool)


def worst_case_tails(message: np.ndarray) -> np.ndarray:
    """T[m] = the largest chance, over every ones-rate q, that bits read from an unmarked image match `message`
    in at least m places (m = 0 .. n + 1), each bit read being 1 with probability q independently.

    A message bit 1 then matches with probability q, a 0 with 1 - q: the matches are the sum of two binomial
    counts. q = 1/2 is the fair-coin binomial tail; q near 0 or 1 is a flat or grey image, which reads (almost)
    every bit the same. The maximum is taken over a grid of 2001 rates, 0.5 included.
    """
    return np.array(_worst_case_tails(int(message.sum()), int(len(message) - message.sum())))


@functools.lru_cache(maxsize=16)
def _worst_case_tails(ones: int, zeros: int) -> tuple[float, ...]:
    q = np.linspace(0.0, 1.0, 2001)[:, None]
    a, b = np.arange(ones + 1), np.arange(zeros + 1)
    comb_a = np.array([math.comb(ones, i) for i in a], dtype=float)
    comb_b = np.array([math.comb(zeros, i) for i in b], dtype=float)
    from_ones = comb_a * q**a * (1 - q) ** (ones - a)
    from_zeros = comb_b * (1 - q) ** b * q ** (zeros - b)
    pmf = np.array([np.convolve(x, y) for x, y in zip(from_ones, from_zeros, strict=True)])
    tails = pmf[:, ::-1].cumsum(axis=1)[:, ::-1]
    return tuple(np.minimum(np.append(tails.max(axis=0), 0.0), 1.0).tolist())


def rank_sum_tails(size: int, ones: int) -> np.ndarray:
    """T[w] = the chance that `ones` positions drawn at random among ranks 1..`size` have a rank sum >= w
    (w = 0 .. the largest sum + 1): the exact null distribution of the Wilcoxon rank-sum statistic."""
    return np.array(_rank_sum_tails(int(size), int(ones)))


@functools.lru_cache(maxsize=16)
def _rank_sum_tails(size: int, ones: int) -> tuple[float, ...]:
    largest = sum(range(size - ones + 1, size + 1))
    # ways[j, w]: subsets of j ranks among those seen so far with rank sum w (counts fit a float64 exactly
    # enough: at most C(size, ones), and every tail is summed from its smallest terms up)
    ways = np.zeros((ones + 1, largest + 1))
    ways[0, 0] = 1.0
    for rank in range(1, size + 1):
        if ones:
            ways[1:, rank:] = ways[1:, rank:] + ways[:-1, : largest + 1 - rank]
    chances = ways[ones] / math.comb(size, ones)
    tails = np.cumsum(chances[::-1])[::-1]
    return tuple(np.minimum(np.append(tails, 0.0), 1.0).tolist())


def stratified_tails(message: np.ndarray, strata: int) -> np.ndarray:
    """T[w] = the chance, without the mark, that the stratified statistic (`stratified_rank_sum`) is >= w: the
    convolution of each stratum's exact rank-sum distribution (bits i, i + strata, i + 2 strata, ...)."""
    bits = np.asarray(message, dtype=bool)
    return np.array(_stratified_tails(tuple(bits.tolist()), int(strata)))


@functools.lru_cache(maxsize=16)
def _stratified_tails(bits: tuple[bool, ...], strata: int) -> tuple[float, ...]:
    message = np.array(bits, dtype=bool)
    chances = np.array([1.0])
    for first in range(strata):
        part = message[first::strata]
        tails = rank_sum_tails(len(part), int(part.sum()))
        chances = np.convolve(chances, tails[:-1] - tails[1:])
    tails = np.cumsum(np.maximum(chances, 0.0)[::-1])[::-1]
    return tuple(np.minimum(np.append(tails, 0.0), 1.0).tolist())


def stratified_rank_sum(shares: np.ndarray, message: np.ndarray, strata: int) -> int:
    """The sum over strata (bits whose index is equal modulo `strata`) of each stratum's `rank_sum`."""
    return sum(rank_sum(shares[first::strata], message[first::strata]) for first in range(strata))


def rank_sum(shares: np.ndarray, message: np.ndarray) -> int:
    """The rank sum of the message's 1-bits among the per-bit shares of votes for 1, ties broken against them."""
    order = np.lexsort((message.astype(np.int8) * -1, shares))  # by share; among equals the 1-bits first
    ranks = np.empty(len(shares), dtype=np.int64)
    ranks[order] = np.arange(1, len(shares) + 1)
    return int(ranks[message.astype(bool)].sum())


def threshold_bits(message: np.ndarray, rate: float = FALSE_POSITIVE_RATE) -> int:
    """The smallest number of matching bits whose worst-case chance without the mark is at most `rate`."""
    tails = worst_case_tails(message)
    return int(np.argmax(tails <= rate))


def _block_votes(image: Image.Image, domain: str) -> np.ndarray:
    """dwtDct block votes of an RGB image read as uint8 pixels, or as the float BGR pixels diffusers hands over."""
    rgb = rgb_pixels(image)
    if domain == "float":
        # a contiguous channel swap, then the conversion: 6x faster than converting a reversed view
        return block_votes(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.float32), order="BGR")
    return block_votes(rgb, order="RGB")


def _too_small(name: str, image: Image.Image) -> WatermarkResult | None:
    """invisible-watermark never marks (nor reads) images under 256x256 pixels: nothing can be found there."""
    if image.width * image.height >= MIN_PIXELS:
        return None
    return WatermarkResult(
        scheme=name,
        detected=False,
        payload=None,
        confidence=0.0,
        details={"note": f"{image.width}x{image.height} is under the {MIN_PIXELS} pixels invisible-watermark marks"},
    )


@dataclass(frozen=True)
class DwtDctMessage:
    """A fixed message embedded with invisible-watermark's dwtDct, detected by a calibrated rank-sum test."""

    name: str
    message: bytes
    strata: int = 8
    """Bits are ranked only against bits whose index is the same modulo this (see the module docstring)."""
    float_pixels: bool = False
    """True when the generator hands dwtDct float pixels (diffusers' SDXL watermarker) instead of uint8. OpenCV
    then centres U on 0.5 instead of 128, which shifts every coefficient by 255 - and flips the bits read in
    uint8 wherever the strongest chroma coefficient is negative - so such a mark is read from float pixels
    (and from uint8 too, each reading at half the false-positive budget)."""
    label: str = ""
    _bits: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_bits", bits_of(self.message))
        if len(self._bits) % self.strata:
            raise ValueError(f"{self.strata} strata do not divide the {len(self._bits)} bits of {self.name}")

    @property
    def payload_bytes(self) -> int:
        return len(self.message)

    @property
    def fixed_payload(self) -> bytes:
        """The message every image of this generator carries (embed takes no other)."""
        return self.message

    @property
    def bits(self) -> np.ndarray:
        return self._bits.copy()

    def decode(self, image: Image.Image) -> WatermarkResult:
        """Read the message's bits from `image` (RGB) and test them against the message (module docstring).

        Details: `message` (hex), `bits`, `rank_sum` (W), `rank_sum_threshold` (the smallest W reported),
        `false_positive_bound` (the chance of reaching it without the mark, at most 1e-6), `p_value` (the
        chance of a W this high without the mark), `matching_bits` (majority bits equal to the message's, for
        reference), `ones_rate` (share of ones read), `read` (the bits read, hex) and, for float-pixel
        schemes, `pixels_read_as` ("float" or "uint8": both are tried, each at half the false-positive
        budget, and the more significant reading is reported). `confidence` is 1 - `p_value`.
        """
        small = _too_small(self.name, image)
        if small is not None:
            return small
        domains = ("float", "uint8") if self.float_pixels else ("uint8",)
        # OpenCV centres U on 0.5 for float pixels and on 128 for uint8: a float-pixel mark is read where it was
        # written, and also as uint8 (a re-encoded copy can read better there); the bound covers both tries.
        message = self._bits
        tails = stratified_tails(message, self.strata)
        best: dict[str, Any] | None = None
        for domain in domains:
            block = shared(("dwtDct-votes", id(image), domain), lambda d=domain: _block_votes(image, d))
            votes = tally(block, len(message))
            if not votes.blocks.all():
                return WatermarkResult(
                    scheme=self.name,
                    detected=False,
                    payload=None,
                    confidence=0.0,
                    details={"note": f"{image.width}x{image.height} is too narrow to hold every bit of the message"},
                )
            statistic = stratified_rank_sum(votes.ones / votes.blocks, message, self.strata)
            if best is None or tails[statistic] < best["tail"]:
                best = {"domain": domain, "read": votes.bits, "rank_sum": statistic, "tail": tails[statistic]}
        assert best is not None
        tries = len(domains)
        threshold = int(np.argmax(tries * tails <= FALSE_POSITIVE_RATE))
        p_value = min(1.0, tries * float(best["tail"]))
        detected = bool(p_value <= FALSE_POSITIVE_RATE)
        details = {
            "message": self.message.hex(),
            "bits": len(message),
            "rank_sum": best["rank_sum"],
            "rank_sum_threshold": threshold,
            "false_positive_bound": _significant(tries * float(tails[threshold])),
            "p_value": _significant(p_value),
            "matching_bits": int((best["read"] == message).sum()),
            "ones_rate": round(float(best["read"].mean()), 4),
            "read": np.packbits(best["read"]).tobytes().hex(),
        }
        if tries > 1:
            details["pixels_read_as"] = best["domain"]
        return WatermarkResult(
            scheme=self.name,
            detected=detected,
            payload=self.message if detected else None,
            confidence=1.0 - p_value,
            details=details,
        )

    def embed(self, image: Image.Image, payload: bytes | None = None) -> Image.Image:
        """Mark `image` with invisible-watermark exactly as the generator does (for tests and `guard watermark`)."""
        if payload is not None and payload != self.message:
            raise GuardError(
                f"The {self.name} watermark always carries {self.message.hex()} ({self.label}); leave the payload out."
            )
        if image.width * image.height < MIN_PIXELS:
            raise GuardError(
                f"The image is {image.width}x{image.height}: invisible-watermark marks only images of at least "
                f"{MIN_PIXELS} pixels (256x256)."
            )
        from imwatermark import WatermarkEncoder

        encoder = WatermarkEncoder()
        encoder.set_watermark("bits", self._bits.astype(int).tolist())
        rgb = rgb_pixels(image)
        if not self.float_pixels:
            # CompVis/stable-diffusion put_watermark: RGB -> BGR uint8, encode, back to RGB.
            marked = encoder.encode(np.ascontiguousarray(rgb[:, :, ::-1]), "dwtDct")
            return Image.fromarray(np.ascontiguousarray(marked[:, :, ::-1]))
        # diffusers StableDiffusionXLWatermarker.apply_watermark on the VAE's [-1, 1] output, then the image
        # processor's postprocess: clamp to [0, 1], times 255, round.
        latent_range = rgb.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
        pixels = np.float32(255) * (latent_range / np.float32(2) + np.float32(0.5))
        marked = encoder.encode(np.ascontiguousarray(pixels[:, :, ::-1]), "dwtDct")[:, :, ::-1]
        signed = np.clip(np.float32(2) * (marked / np.float32(255) - np.float32(0.5)), -1.0, 1.0)
        unit = np.clip(signed / np.float32(2) + np.float32(0.5), 0.0, 1.0)
        return Image.fromarray(np.round(unit * 255).astype(np.uint8))


def _significant(value: float) -> float:
    """A probability rounded to 3 significant digits (so tiny bounds survive JSON rounding)."""
    return float(f"{value:.3g}")


def stable_diffusion_v1() -> DwtDctMessage:
    return DwtDctMessage("sd-v1", b"StableDiffusionV1", label='bytes "StableDiffusionV1"')


def stable_diffusion_v2() -> DwtDctMessage:
    return DwtDctMessage("sd-v2", b"SDV2", label='bytes "SDV2"', strata=2)


def sdxl() -> DwtDctMessage:
    return DwtDctMessage(
        "sdxl",
        SDXL_WATERMARK_MESSAGE.to_bytes(6, "big"),
        float_pixels=True,
        label="the SDXL WATERMARK_MESSAGE",
    )


RIVAGAN_LOGIT_THRESHOLD = 0.52
"""invisible-watermark reads a rivaGan bit as 1 when its logit exceeds this."""


@dataclass
class RivaGan:
    """invisible-watermark's rivaGan: a learned 32-bit codec run through its bundled ONNX models.

    `decode` reports the 32 bits read (`details.bits_read`, exactly invisible-watermark's bits) but cannot
    say whether a mark is there: the payload is arbitrary, so there is no message to match, and the logits'
    distance from the threshold does not separate marked from clean images safely (on 512x512 photos we
    measured a clean photo with a median distance of 3.6 and a marked one with 5.8). So `detected` is always
    False, `details.decidable` is False, and `confidence` is 0. Given the payload to look for,
    `decode_expecting` is a calibrated k-of-32 bit count (30 of 32 bits for a balanced payload).
    Reading is slow (about 2 s per 512x512 image on one core), which is why the verifier does not try it on
    every image.
    """

    name: str = "rivaGan"
    payload_bytes: int = 4

    @functools.cached_property
    def _decoder(self) -> Any:
        return _onnx_session("rivagan_decoder.onnx")

    def logits(self, image: Image.Image) -> np.ndarray:
        """The decoder's 32 logits for `image` (RGB), fed as invisible-watermark feeds it (BGR in [-1, 1])."""
        bgr = bgr_array(image).astype(np.float32)
        frame = (bgr / np.float32(127.5) - np.float32(1.0)).transpose(2, 0, 1)[None, :, None]
        return self._decoder.run(None, {"frame": np.ascontiguousarray(frame)})[0][0]

    def _read(self, image: Image.Image) -> tuple[np.ndarray, dict[str, Any]] | WatermarkResult:
        small = _too_small(self.name, image)
        if small is not None:
            return small
        logits = self.logits(image)
        read = logits > RIVAGAN_LOGIT_THRESHOLD
        return read, {
            "bits_read": np.packbits(read).tobytes().hex(),
            "median_margin": round(float(np.median(np.abs(logits - RIVAGAN_LOGIT_THRESHOLD))), 3),
        }

    def decode(self, image: Image.Image) -> WatermarkResult:
        """The 32 bits read, with no detection call (see the class docstring)."""
        reading = self._read(image)
        if isinstance(reading, WatermarkResult):
            return reading
        _, details = reading
        details.update(decidable=False, note="rivaGan carries an arbitrary payload: give the one to look for")
        return WatermarkResult(scheme=self.name, detected=False, payload=None, confidence=0.0, details=details)

    def decode_expecting(self, image: Image.Image, payload: bytes) -> WatermarkResult:
        """Is `payload` in `image`? Detected when the bits read match it in at least k of 32 places, k set so
        that the chance on an image without it is at most 1e-6 (worst case over the ones-rate). k is 30 for
        payloads with 11-21 ones, up to 32 for less balanced ones; one with at most 4 ones or 4 zeros is what
        a flat image reads and is never reported (k = 33)."""
        if len(payload) != self.payload_bytes:
            raise GuardError(f"A rivaGan payload is {self.payload_bytes} bytes ({len(payload)} given).")
        reading = self._read(image)
        if isinstance(reading, WatermarkResult):
            return reading
        read, details = reading
        expected = bits_of(payload)
        matches = int((read == expected).sum())
        tails = worst_case_tails(expected)
        k = threshold_bits(expected)
        details.update(
            expected=payload.hex(),
            matching_bits=matches,
            threshold_bits=k,
            false_positive_bound=_significant(tails[k]),
            p_value=_significant(tails[matches]),
        )
        if k > len(expected):
            details["note"] = "a payload this unbalanced (almost all ones or zeros) is what a flat image reads"
        detected = matches >= k
        return WatermarkResult(
            scheme=self.name,
            detected=detected,
            payload=payload if detected else None,
            confidence=matches / len(expected),
            details=details,
        )

    def embed(self, image: Image.Image, payload: bytes) -> Image.Image:
        """Mark `image` with invisible-watermark's rivaGan encoder (slow: about a second per 512x512 image)."""
        if len(payload) != self.payload_bytes:
            raise GuardError(f"A rivaGan payload is {self.payload_bytes} bytes ({len(payload)} given).")
        if image.width * image.height < MIN_PIXELS:
            raise GuardError(
                f"The image is {image.width}x{image.height}: invisible-watermark marks only images of at least "
                f"{MIN_PIXELS} pixels (256x256)."
            )
        from imwatermark import WatermarkEncoder

        WatermarkEncoder.loadModel()
        encoder = WatermarkEncoder()
        encoder.set_watermark("bytes", payload)
        marked = encoder.encode(bgr_array(image), "rivaGan")
        return Image.fromarray(np.ascontiguousarray(marked[:, :, ::-1]))


def _onnx_session(filename: str) -> Any:
    """An ONNX Runtime session for one of the models invisible-watermark ships (without importing it: torch)."""
    import importlib.util

    import onnxruntime

    spec = importlib.util.find_spec("imwatermark")
    if spec is None or not spec.submodule_search_locations:
        raise GuardError("invisible-watermark is not installed; install it with `pip install invisible-watermark`.")
    path = os.path.join(next(iter(spec.submodule_search_locations)), filename)
    if not os.path.exists(path):
        raise GuardError(f"invisible-watermark's model {filename} is missing; reinstall invisible-watermark.")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
