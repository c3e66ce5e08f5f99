"""Our invisible watermark: tiled spread spectrum in luma and chroma, self-synchronising, with a calibrated detector.

**Embedding.** The image is viewed at a working resolution whose shorter side is 512 pixels. There a
128x128 tile is repeated over the whole picture. The tile holds a 32x32 grid of chips (one every 4 pixels),
each a Gaussian pulse whose sign is +1 or -1: 256 chips carry a fixed pseudo-random synchronisation
sequence, the other 768 carry the message — 4 version bits + the 48-bit payload + CRC-8, convolutionally
coded (K=7, rate 1/3, 198 coded bits, each spread over 3-4 chips with pseudo-random signs). The chips are
drawn twice: narrow pulses in luma (60% of the energy) and wide pulses, on a tile shifted by half its size,
in blue-difference chroma Cb (40%; photos have 3-8x less fine detail there, and wide pulses survive JPEG's
chroma subsampling). Both patterns are resized to the image, shaped by a texture mask (more strength
where the picture is busy) and scaled to a fixed mean-square error (PSNR 38.5 dB before clipping).

**Decoding.** Luma and Cb are brought to the same working resolution, high-pass filtered and divided by
their local strength. Because the mark repeats, the autocorrelation of that residual has peaks on the
lattice of tile periods. The untouched geometry (the image was at most resized as a whole) is tried
first; if it does not decode, the strongest autocorrelation peaks (and the tile sizes a crop, not rescaled,
of an image of a common output size would show), ranked and refined by how coherently the picture folds
on their lattice, give the tile's current size and orientation, so cropping, rescaling and small
rotations are undone without a key search. The residual is warped back and
folded (all tiles summed into one), which makes any crop a circular shift; codec block-grid artefacts,
which fold coherently, are removed. The shift is found by correlating the folded tile with the
synchronisation chips at all 128x128 offsets at once (FFT), reading luma with chroma and luma alone
(after JPEG the chroma is mostly noise). The message chips at the winning offset, luma and chroma weighted by the
signal-to-noise ratio the synchronisation chips show in each (maximum-ratio combining), give soft values
for the Viterbi decoder; the CRC and version check the result.

**Calibration.** At every offset the detector computes z = sum(a_k * s_k) / sqrt(sum(a_k^2)), where a_k are
the image's values at the synchronisation chips and s_k the key's +-1 signs. For any image that does not
carry the mark, the signs are independent of the image, and Hoeffding's inequality for Rademacher sums
bounds P(z >= t) <= exp(-t^2 / 2) whatever the image looks like. The detector tests H = 5 geometries x 2
channel weightings x 16,384 offsets = 163,840 hypotheses; the geometries come from the picture alone (the
autocorrelation and fold coherence do not use the key), so by the union bound an unmarked image reaches z
>= t somewhere with probability at most H * exp(-t^2 / 2). Detection has two paths, each given half of the
1e-6 budget: z >= 7.28 alone, or z >= 6.03 and a decoded message whose version and CRC (12 bits) are right.
For the second path, the message signs are independent of the synchronisation signs and the code is
linear, so the decoded word of an unmarked image is uniform and passes the check with probability 2^-12.
`false_positive_bound(z, message_valid)` is that bound; `confidence` is 1 minus it, so an image is
`detected` exactly when confidence >= 1 - 1e-6."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import scipy.fft
from PIL import Image

from guard.errors import GuardError
from guard.images import rgb_pixels
from guard.provenance.watermarks import WatermarkResult, convolutional

VERSION = 1
"""The scheme version written inside every mark (4 bits)."""

VERSION_BITS = 4
PAYLOAD_BYTES = 6
WORK_SIDE = 512
"""The shorter side of the working resolution, where the tile is 128x128 pixels."""
TILE = 128
CHIP = 4
GRID = TILE // CHIP
SYNC_CHIPS = 256
ACF_CHROMA_WEIGHT = 1.0
CHROMA_PULSE_SIGMA = 3.0
PULSE_SIGMA = 1.0
"""Standard deviation (working-resolution pixels) of the Gaussian pulse each chip is drawn with."""
CHROMA_DETAIL_SIGMA = 4.0
DETAIL_SIGMA = 1.5
"""The decoder's high-pass: each channel minus its Gaussian blur of this standard deviation (pixels)."""
BLOCK_GRID = 16
"""Period (pixels) of the codec block grid removed from the folded tile (see `_without_block_grid`)."""
TARGET_PSNR = 38.5
"""The embedding strength: the mark's mean-square error corresponds to this PSNR (before clipping)."""
CHROMA_SHARE = 0.4
"""Share of the mark's energy (mean-square error) put in blue-difference chroma (Cb), the rest in luma:
photos have 3-8x less fine detail in Cb than in luma, so a chroma chip is far easier to read, while JPEG's
chroma subsampling makes luma the more robust carrier; the decoder reads both."""
CB_DIRECTION = np.array([0.0, -0.344136, 1.772], dtype=np.float32)
"""The RGB change that moves Cb by one and leaves luma and Cr unchanged (ITU-R BT.601)."""
LUMA_WEIGHTS = (0.6, 1.0)
"""Weights of the (normalised) luma residual against the chroma one the decoder tries: both channels, and luma
alone (after JPEG, whose chroma subsampling and coarse chroma quantisation leave mostly noise there)."""
MIN_SIDE = 128
"""Images whose shorter side is below this are refused by `embed` (and read as not marked by `decode`)."""
FALSE_POSITIVE_RATE = 1e-6
"""Upper bound on the probability that an unmarked image is reported as marked."""
PRESELECTED = 16
"""Autocorrelation peaks ranked by how coherently the picture folds on their lattice (key-independent)."""
REFINED = 1
"""How many of the best-ranked geometries are refined (the rest are tested as found)."""
CANDIDATES = 4
"""Tile geometries (scale and rotation) taken from the autocorrelation peaks; the untouched geometry (scale 1,
no rotation: the image was at most resized as a whole) is always tested first, on top of these."""
PERIOD_RANGE = (80.0, 250.0)
"""Tile periods searched, in working-resolution pixels (128 when the image was only resized)."""
MAX_ROTATION = 10.0
"""Rotations searched, in degrees either way."""
ORIGINAL_SIDE_STEP = 64
"""Original sizes assumed when looking for a crop that was not rescaled (see `_cropped_geometries`)."""
CROP_CANDIDATES = 3
"""How many of those crop geometries (the best by autocorrelation) are ranked with the autocorrelation's peaks."""
KEY = b"image-guard watermark v1"
"""Seed of the pseudo-random chip layout and signs. It is public: anyone can detect (and so attack) the mark."""

INFO_BITS = VERSION_BITS + PAYLOAD_BYTES * 8 + 8
CODED_BITS = convolutional.RATE * (INFO_BITS + convolutional.MEMORY)
HYPOTHESES = (1 + CANDIDATES) * len(LUMA_WEIGHTS) * TILE * TILE
CHECK_BITS = VERSION_BITS + 8
"""Bits of the decoded message an unmarked image matches only by chance: the version and the CRC-8."""


def false_positive_bound(z: float, message_valid: bool = False) -> float:
    """Bound on the probability that an unmarked image scores `z` (and, if `message_valid`, also decodes to a
    message with the right version and CRC) at some tested geometry and offset; see the module docstring."""
    chance = 2.0**-CHECK_BITS if message_valid else 1.0
    return min(1.0, 2.0 * HYPOTHESES * math.exp(-0.5 * z * z) * chance)


THRESHOLD = math.sqrt(2.0 * math.log(2.0 * HYPOTHESES / FALSE_POSITIVE_RATE))
"""The z-score that alone means detected (`false_positive_bound(THRESHOLD) == FALSE_POSITIVE_RATE`)."""
THRESHOLD_WITH_MESSAGE = math.sqrt(2.0 * math.log(2.0 * HYPOTHESES * 2.0**-CHECK_BITS / FALSE_POSITIVE_RATE))
"""The z-score that means detected when the decoded message also has the right version and CRC."""


class _Layout:
    """The key-derived chip layout: which chips synchronise, which carry which coded bit, and their signs."""

    def __init__(self, key: bytes) -> None:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))
        order = rng.permutation(GRID * GRID)
        self.sync_index = order[:SYNC_CHIPS]
        self.message_index = order[SYNC_CHIPS:]
        self.sync_signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), SYNC_CHIPS)
        self.message_signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), self.message_index.size)
        self.message_bit = np.arange(self.message_index.size) % CODED_BITS
        # chip k sits at pixel (row, col) = CHIP * divmod(k, GRID)
        self.sync_rows, self.sync_cols = (CHIP * np.divmod(self.sync_index, GRID)[i] for i in (0, 1))
        self.message_rows, self.message_cols = (CHIP * np.divmod(self.message_index, GRID)[i] for i in (0, 1))

        freq = np.fft.fftfreq(TILE)
        envelope = np.exp(-2.0 * (math.pi * PULSE_SIGMA) ** 2 * freq**2)
        self.pulse_fft = np.outer(envelope, envelope).astype(np.complex64)
        envelope = np.exp(-2.0 * (math.pi * CHROMA_PULSE_SIGMA) ** 2 * freq**2)
        self.chroma_pulse_fft = np.outer(envelope, envelope).astype(np.complex64)
        sync = np.zeros((TILE, TILE), np.float32)
        sync[self.sync_rows, self.sync_cols] = self.sync_signs
        mask = np.zeros((TILE, TILE), np.float32)
        mask[self.sync_rows, self.sync_cols] = 1.0
        half = TILE // 2 + 1  # real-input FFTs keep half the columns; the pulses are real and symmetric
        self.pulse_rfft = self.pulse_fft[:, :half]
        self.chroma_pulse_rfft = self.chroma_pulse_fft[:, :half]
        self.sync_rfft_conj = np.conj(scipy.fft.rfft2(sync))
        self.mask_rfft_conj = np.conj(scipy.fft.rfft2(mask))

    def targets(self, coded: np.ndarray) -> np.ndarray:
        """The +-1 each of the 32x32 chips should read (row-major chip order) for these coded bits."""
        targets = np.empty(GRID * GRID, np.float32)
        targets[self.sync_index] = self.sync_signs
        targets[self.message_index] = self.message_signs * (2.0 * coded[self.message_bit] - 1.0)
        return targets

    def tile(self, chips: np.ndarray, chroma: bool = False) -> np.ndarray:
        """The 128x128 pattern: a Gaussian pulse of amplitude chips[k] at every chip position."""
        impulses = np.zeros((TILE, TILE), np.float32)
        impulses[::CHIP, ::CHIP] = chips.reshape(GRID, GRID)
        pulse = self.chroma_pulse_fft if chroma else self.pulse_fft
        return np.real(np.fft.ifft2(np.fft.fft2(impulses) * pulse)).astype(np.float32)

    def matched(self, folded: np.ndarray, chroma: bool = False) -> np.ndarray:
        """The folded residual filtered with the chip pulse (the matched filter), scaled to unit RMS."""
        pulse = self.chroma_pulse_rfft if chroma else self.pulse_rfft
        filtered = scipy.fft.irfft2(scipy.fft.rfft2(folded) * pulse, s=folded.shape).astype(np.float32)
        return filtered / (float(np.sqrt(np.mean(filtered * filtered))) + 1e-12)


def _message_bits(payload: bytes) -> np.ndarray:
    version = np.array([(VERSION >> (VERSION_BITS - 1 - i)) & 1 for i in range(VERSION_BITS)], dtype=np.uint8)
    body = np.concatenate([version, np.unpackbits(np.frombuffer(payload, dtype=np.uint8))])
    return np.concatenate([body, convolutional.crc8(body)])


def _work_size(height: int, width: int) -> tuple[int, int]:
    scale = WORK_SIDE / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _texture_mask(luma: np.ndarray) -> np.ndarray:
    """Local contrast (standard deviation in a 7x7 window, floored), the embedding strength per pixel."""
    mean = cv2.blur(luma, (7, 7))
    variance = np.maximum(cv2.blur(luma * luma, (7, 7)) - mean * mean, 0.0)
    return np.sqrt(variance + 16.0)


class TiledSpreadSpectrum:
    """The project's watermark ("guard"): 48-bit payload, scheme version, calibrated detection."""

    name = "guard"
    payload_bytes = PAYLOAD_BYTES
    threshold = THRESHOLD
    min_side = MIN_SIDE
    """`embed` refuses images whose shorter side is smaller (callers check before spending time on them)."""

    def __init__(self, key: bytes = KEY) -> None:
        self._layout = _Layout(key)

    def embed(self, image: Image.Image, payload: bytes) -> Image.Image:
        """`image` with `payload` (6 bytes) embedded invisibly."""
        if len(payload) != PAYLOAD_BYTES:
            raise GuardError(f"The watermark payload must be {PAYLOAD_BYTES} bytes (got {len(payload)}).")
        if min(image.size) < MIN_SIDE:
            raise GuardError(
                f"The image is {image.width}x{image.height}: too small to watermark "
                f"(the shorter side must be at least {MIN_SIDE} pixels)."
            )
        rgb = rgb_pixels(image)
        height, width = rgb.shape[:2]
        layout = self._layout
        targets = layout.targets(convolutional.encode(_message_bits(payload)))
        mask = _texture_mask(_luma(rgb))
        work = _work_size(height, width)
        tile = layout.tile(targets)
        luma_mark = _tiled(tile, (height, width), work) * mask
        chroma_tile = np.roll(layout.tile(targets, chroma=True), (TILE // 2, TILE // 2), axis=(0, 1))
        chroma_mark = _tiled(chroma_tile, (height, width), work) * mask
        target_mse = (255.0 / 10.0 ** (TARGET_PSNR / 20.0)) ** 2
        luma_mark *= math.sqrt((1.0 - CHROMA_SHARE) * target_mse / (float(np.mean(luma_mark**2)) + 1e-12))
        chroma_mark *= math.sqrt(
            CHROMA_SHARE * target_mse / (float(np.mean(chroma_mark**2)) * float(np.mean(CB_DIRECTION**2)) + 1e-12)
        )
        marked = rgb.astype(np.float32) + luma_mark[:, :, None] + chroma_mark[:, :, None] * CB_DIRECTION
        return Image.fromarray(np.clip(marked + 0.5, 0, 255).astype(np.uint8))

    def decode(self, image: Image.Image) -> WatermarkResult:
        """Whether our mark is in `image`, its payload, and the evidence (see the module docstring)."""
        rgb = rgb_pixels(image)
        height, width = rgb.shape[:2]
        if min(height, width) < MIN_SIDE // 2:
            return self._absent({"reason": f"image too small ({width}x{height})"})
        luma, chroma = _residuals(rgb, _work_size(height, width))
        best: dict[str, Any] = {}
        for scale, angle in _geometries(luma, chroma, min(height, width)):
            reading = self._read(luma, chroma, scale, angle)
            if not best or reading["false_positive_bound"] < best["false_positive_bound"]:
                best = reading
            if best["false_positive_bound"] <= FALSE_POSITIVE_RATE:
                break  # testing fewer hypotheses than the bound counts only lowers the false-positive rate
        if "soft" in best:
            self._read_message(best)  # too weak to count, but its bits are still reported (as `read`)
        detected = best["false_positive_bound"] <= FALSE_POSITIVE_RATE
        payload = best.pop("payload") if detected else None
        best.pop("payload", None)
        return WatermarkResult(self.name, detected, payload, 1.0 - best["false_positive_bound"], best)

    def _read(self, luma: np.ndarray, chroma: np.ndarray, scale: float, angle: float) -> dict[str, Any]:
        layout = self._layout
        luma_folded = layout.matched(_without_block_grid(_fold(luma, scale, angle)))
        chroma_folded = layout.matched(
            np.roll(_without_block_grid(_fold(chroma, scale, angle)), (-TILE // 2, -TILE // 2), axis=(0, 1)),
            chroma=True,
        )
        best = -np.inf
        for weight in LUMA_WEIGHTS:
            candidate = weight * luma_folded + (1.0 - weight) * chroma_folded
            correlation = scipy.fft.irfft2(scipy.fft.rfft2(candidate) * layout.sync_rfft_conj, s=candidate.shape)
            energy = scipy.fft.irfft2(scipy.fft.rfft2(candidate * candidate) * layout.mask_rfft_conj, s=candidate.shape)
            z_map = correlation / np.sqrt(np.maximum(energy, 1e-12))
            peak = np.unravel_index(int(np.argmax(z_map)), z_map.shape)
            if z_map[peak] > best:
                best, (dy, dx), luma_weight = float(z_map[peak]), peak, weight
        filtered = _combined(luma_folded, chroma_folded, layout, dy, dx)
        chips = filtered[(layout.message_rows + dy) % TILE, (layout.message_cols + dx) % TILE] * layout.message_signs
        reading = {
            "z": round(best, 3),
            "threshold": round(THRESHOLD, 3),
            "false_positive_bound": false_positive_bound(best),
            "scale": round(scale, 4),
            "rotation": round(angle, 3),
            "offset": [int(dx), int(dy)],
            "luma_weight": luma_weight,
            "soft": np.bincount(layout.message_bit, weights=chips, minlength=CODED_BITS),
        }
        if best >= THRESHOLD_WITH_MESSAGE:  # below it the message cannot change the decision: decode later
            self._read_message(reading)
        return reading

    @staticmethod
    def _read_message(reading: dict[str, Any]) -> None:
        """Viterbi-decode the reading's soft values; check version and CRC; update its bound and payload."""
        soft = reading.pop("soft")
        bits = convolutional.viterbi_decode(soft / (float(np.std(soft)) + 1e-12), INFO_BITS)
        body, crc = bits[:-8], bits[-8:]
        version = int(np.packbits(np.concatenate([np.zeros(8 - VERSION_BITS, np.uint8), body[:VERSION_BITS]]))[0])
        read = bytes(np.packbits(body[VERSION_BITS:]))
        crc_ok = bool(np.array_equal(convolutional.crc8(body), crc))
        valid = crc_ok and version == VERSION
        reading["false_positive_bound"] = false_positive_bound(reading["z"], valid)
        reading["threshold"] = round(THRESHOLD_WITH_MESSAGE if valid else THRESHOLD, 3)
        reading.update(crc_ok=crc_ok, version=version if crc_ok else None, read=read.hex())
        reading["payload"] = read if valid else None

    def _absent(self, details: dict[str, Any]) -> WatermarkResult:
        return WatermarkResult(self.name, False, None, 0.0, {"threshold": round(THRESHOLD, 3), **details})


def _combined(luma: np.ndarray, chroma: np.ndarray, layout: _Layout, dy: int, dx: int) -> np.ndarray:
    """Luma and chroma readings weighted for the message by how well each carries the mark in this image
    (maximum-ratio combining): the synchronisation chips at the found offset are known, so their mean is each
    channel's signal and their spread its noise; weights = inverse noise covariance times signal. The weights
    use the image and the synchronisation signs only, never the message signs, so the decoded word of an
    unmarked image stays uniform (the premise of the message check in `false_positive_bound`)."""
    rows, cols = (layout.sync_rows + dy) % TILE, (layout.sync_cols + dx) % TILE
    samples = np.stack([luma[rows, cols], chroma[rows, cols]]) * layout.sync_signs
    covariance = np.cov(samples) + 1e-6 * np.eye(2)
    weights = np.linalg.solve(covariance, samples.mean(axis=1))
    return weights[0] * luma + weights[1] * chroma


def _residuals(rgb: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Luma and blue-difference chroma at the working resolution, each high-passed (the band the chips live in)
    and divided by its local strength: the host picture mostly removed, busy areas weighted down."""
    height, width = rgb.shape[:2]
    work_h, work_w = size
    ycrcb = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
    channels = [ycrcb[:, :, 0].astype(np.float32), ycrcb[:, :, 2].astype(np.float32)]
    if (work_h, work_w) != (height, width):
        interpolation = cv2.INTER_AREA if work_h < height else cv2.INTER_LINEAR
        channels = [cv2.resize(channel, (work_w, work_h), interpolation=interpolation) for channel in channels]
    return _normalised_detail(channels[0], DETAIL_SIGMA), _normalised_detail(channels[1], CHROMA_DETAIL_SIGMA)


def _normalised_detail(channel: np.ndarray, sigma: float) -> np.ndarray:
    detail = channel - cv2.GaussianBlur(channel, (0, 0), sigma)
    strength = np.sqrt(np.maximum(cv2.blur(detail * detail, (9, 9)), 0.0)) + 1.0
    return np.clip(detail / strength, -3.0, 3.0)


def _without_block_grid(folded: np.ndarray) -> np.ndarray:
    """The folded tile minus its 16-pixel-periodic part. JPEG and WebP leave artefacts on an 8x8 (luma) and
    16x16 (subsampled chroma) grid; the tile being a multiple of both, folding adds them up coherently, while
    our random chips have only 1/64 of their energy in that part."""
    blocks = folded.reshape(TILE // BLOCK_GRID, BLOCK_GRID, TILE // BLOCK_GRID, BLOCK_GRID)
    return (blocks - blocks.mean(axis=(0, 2), keepdims=True)).reshape(TILE, TILE)


def _tiled(tile: np.ndarray, size: tuple[int, int], work: tuple[int, int]) -> np.ndarray:
    """`tile` repeated over the working resolution, then resized to the image's size."""
    height, width = size
    work_h, work_w = work
    pattern = np.tile(tile, (-(-work_h // TILE), -(-work_w // TILE)))[:work_h, :work_w]
    if (work_h, work_w) != (height, width):
        interpolation = cv2.INTER_AREA if work_h > height else cv2.INTER_LINEAR
        pattern = cv2.resize(pattern, (width, height), interpolation=interpolation)
    return pattern


def _geometries(luma: np.ndarray, chroma: np.ndarray, image_side: int) -> Iterator[tuple[float, float]]:
    """The untouched geometry first, then (only if still needed) the candidates found in the picture."""
    yield 1.0, 0.0
    yield from _geometry_candidates(luma + ACF_CHROMA_WEIGHT * chroma, image_side)


def _geometry_candidates(residual: np.ndarray, image_side: int) -> list[tuple[float, float]]:
    """(scale, rotation in degrees) of the tile lattice, from the strongest autocorrelation peaks."""
    height, width = residual.shape
    window = _lag_window(height, width)
    if window is None:
        return []
    ly, lx, region = window
    acf = scipy.fft.irfft2(np.abs(scipy.fft.rfft2(residual)), s=residual.shape)
    # score a lattice vector v by the autocorrelation at v and at v turned by 90 degrees (the tile is square)
    score = acf[ly % height, lx % width] + acf[lx % height, (-ly) % width]
    score = np.where(region, score, -np.inf).astype(np.float32)
    peaks = np.argwhere((score == _max_filter(score)) & region)
    order = np.argsort(score[peaks[:, 0], peaks[:, 1]])[::-1][:PRESELECTED]
    found = []
    for row, col in peaks[order]:
        dy, dx = _refine(score, row, col)
        vy, vx = ly[row, col] + dy, lx[row, col] + dx
        found.append((math.hypot(vx, vy) / TILE, math.degrees(math.atan2(vy, vx))))
    # of the crop geometries, those whose lattice vector scores best in the autocorrelation
    origin_row, origin_col = -int(ly[0, 0]), -int(lx[0, 0])

    def lag_score(scale: float) -> float:
        col = origin_col + round(scale * TILE)
        return float(np.max(score[origin_row, max(col - 1, 0) : col + 2], initial=-np.inf))

    found += sorted(_cropped_geometries(image_side), key=lambda geometry: -lag_score(geometry[0]))[:CROP_CANDIDATES]
    # the autocorrelation looks one period away; folding checks every period at once: rank and refine by it
    half = cv2.resize(residual, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    ranked = sorted(found, key=lambda geometry: -_periodicity(half, *geometry))[:CANDIDATES]
    return [_refine_geometry(half, *geometry) for geometry in ranked[:REFINED]] + ranked[REFINED:]


def _cropped_geometries(image_side: int) -> list[tuple[float, float]]:
    """Geometries of a crop that was not rescaled back. The tile kept its size in the image's pixels, a quarter
    of the original's shorter side S, so at the working resolution its scale is S / `image_side`; S is larger
    than the crop and taken to be a multiple of `ORIGINAL_SIDE_STEP` (generators' output sizes are). Cut down
    to few tiles, the picture's autocorrelation peaks are weak; these candidates are ranked with them by the
    same key-independent test, so they add no hypotheses to the false-positive bound."""
    high = PERIOD_RANGE[1] / TILE
    first = image_side // ORIGINAL_SIDE_STEP + 1
    sides = range(first * ORIGINAL_SIDE_STEP, int(high * image_side) + 1, ORIGINAL_SIDE_STEP)
    return [(side / image_side, 0.0) for side in sides if side / image_side > 1.01]


def _refine_geometry(half: np.ndarray, scale: float, angle: float) -> tuple[float, float]:
    """Move scale and rotation, on a grid and then a finer one, to where the (half-resolution) residual folds
    most coherently; the two are searched together because an error in one shifts the best value of the other."""
    for scale_step, scale_reach, angle_step, angle_reach in ((0.003, 1, 0.3, 3), (0.001, 1, 0.1, 1)):
        grid = [
            (scale * (1 + i * scale_step), angle + j * angle_step)
            for i in range(-scale_reach, scale_reach + 1)
            for j in range(-angle_reach, angle_reach + 1)
        ]
        scale, angle = max(grid, key=lambda geometry: _periodicity(half, *geometry))
    return scale, angle


@functools.lru_cache(maxsize=16)
def _lag_window(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Autocorrelation lags (rows, columns, in-range mask) where the first lattice vector may lie."""
    low, high = PERIOD_RANGE
    high = min(high, height / 2 - 2, width / 2 - 2)
    if high <= low:
        return None
    reach_y = math.ceil(high * math.sin(math.radians(MAX_ROTATION))) + 1
    x_from = math.floor(low * math.cos(math.radians(MAX_ROTATION))) - 1
    ly, lx = np.meshgrid(np.arange(-reach_y, reach_y + 1), np.arange(x_from, math.ceil(high) + 2), indexing="ij")
    radius = np.hypot(lx, ly)
    region = (radius >= low) & (radius <= high) & (np.abs(np.degrees(np.arctan2(ly, lx))) <= MAX_ROTATION)
    return ly, lx, region


def _max_filter(values: np.ndarray) -> np.ndarray:
    finite = np.where(np.isfinite(values), values, np.float32(-3e38)).astype(np.float32)
    return cv2.dilate(finite, np.ones((5, 5), np.uint8))


def _refine(score: np.ndarray, row: int, col: int) -> tuple[float, float]:
    """Sub-pixel offset of a peak by a parabola through it and its neighbours, in each direction."""

    def vertex(minus: float, centre: float, plus: float) -> float:
        if not (np.isfinite(minus) and np.isfinite(plus)):
            return 0.0
        curvature = minus - 2.0 * centre + plus
        return 0.0 if curvature >= 0 else float(np.clip(0.5 * (minus - plus) / curvature, -0.5, 0.5))

    rows, cols = score.shape
    dy = vertex(score[row - 1, col], score[row, col], score[row + 1, col]) if 0 < row < rows - 1 else 0.0
    dx = vertex(score[row, col - 1], score[row, col], score[row, col + 1]) if 0 < col < cols - 1 else 0.0
    return dy, dx


def _fold(residual: np.ndarray, scale: float, angle: float, tile: int = TILE) -> np.ndarray:
    """The residual warped so the tile is `tile` pixels square and upright, then all tiles summed into one."""
    height, width = residual.shape
    if scale == 1.0 and angle == 0.0:
        padded = np.zeros((-(-height // tile) * tile, -(-width // tile) * tile), np.float32)
        padded[:height, :width] = residual
        return padded.reshape(padded.shape[0] // tile, tile, padded.shape[1] // tile, tile).sum(axis=(0, 2))
    cos, sin = math.cos(math.radians(angle)) * scale, math.sin(math.radians(angle)) * scale
    out_h = math.ceil(height / scale / tile) * tile
    out_w = math.ceil(width / scale / tile) * tile
    matrix = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=np.float64)
    canonical = cv2.warpAffine(
        residual,
        matrix,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0.0,
    )
    return canonical.reshape(out_h // tile, tile, out_w // tile, tile).sum(axis=(0, 2))


def _periodicity(residual: np.ndarray, scale: float, angle: float) -> float:
    """How much stronger the residual is when folded with this tile geometry than its parts are alone: about 1
    for anything not repeating on that lattice, up to the number of tiles for a perfectly repeated pattern.
    Uses the picture alone (not the key), so choosing geometries by it costs nothing in the error bound."""
    folded = _fold(residual, scale, angle, TILE // 2)
    folded -= folded.mean()
    # the warp spreads the picture's energy over 1/scale^2 as many pixels
    return float(np.sum(folded * folded)) * scale * scale / (float(np.sum(residual * residual)) + 1e-12)
