"""Channel coding for watermark payloads: CRC-8, a K=7 rate-1/3 convolutional code and its soft Viterbi decoder.

The code is the one 3GPP LTE uses for control channels (generators 133, 171, 165 octal), terminated with
six zero tail bits, so every message of `n` bits becomes `3 * (n + 6)` coded bits. The decoder takes soft
values (positive = bit 1, magnitude = reliability) and returns the most likely message; it is vectorised
over the 64 trellis states, so decoding a 60-bit message costs well under a millisecond.
"""

from __future__ import annotations

import numpy as np

CONSTRAINT = 7
GENERATORS = (0o133, 0o171, 0o165)
RATE = len(GENERATORS)
MEMORY = CONSTRAINT - 1
STATES = 1 << MEMORY

CRC8_POLY = 0x07
"""CRC-8 (ITU-T I.432.1 / ATM HEC polynomial x^8 + x^2 + x + 1)."""


def _parity(value: np.ndarray) -> np.ndarray:
    value = value.copy()
    parity = np.zeros_like(value)
    while np.any(value):
        parity ^= value & 1
        value >>= 1
    return parity


def _trellis() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every next state: its two predecessor states, the input bit that leads there, and the +-1 outputs.

    The shift register holds the newest input in bit 6 and the state (six previous inputs) in bits 5..0;
    the next state is the register shifted right by one.
    """
    next_states = np.arange(STATES)
    inputs = next_states >> (MEMORY - 1)
    predecessors = np.stack([((next_states << 1) & (STATES - 1)) | b for b in (0, 1)], axis=1)
    registers = (inputs[:, None] << MEMORY) | predecessors
    outputs = np.stack([_parity(registers & g) for g in GENERATORS], axis=-1)
    return predecessors, inputs, (2.0 * outputs - 1.0).astype(np.float32)


_PREDECESSORS, _INPUTS, _SIGNS = _trellis()


def crc8(bits: np.ndarray) -> np.ndarray:
    """The 8 CRC bits (MSB first) of a bit array."""
    register = 0
    for bit in np.asarray(bits, dtype=np.uint8):
        feedback = ((register >> 7) & 1) ^ int(bit)
        register = (register << 1) & 0xFF
        if feedback:
            register ^= CRC8_POLY
    return np.array([(register >> (7 - i)) & 1 for i in range(8)], dtype=np.uint8)


def encode(bits: np.ndarray) -> np.ndarray:
    """Convolutionally encode `bits` (0/1), appending the zero tail: 3 * (len + 6) coded bits."""
    message = np.concatenate([np.asarray(bits, dtype=np.int64), np.zeros(MEMORY, dtype=np.int64)])
    padded = np.concatenate([np.zeros(MEMORY, dtype=np.int64), message])
    # register at step t: newest input in bit 6, the previous six inputs below it
    weights = 1 << np.arange(CONSTRAINT)
    windows = np.lib.stride_tricks.sliding_window_view(padded, CONSTRAINT)
    registers = windows @ weights
    coded = np.stack([_parity(registers & g) for g in GENERATORS], axis=-1)
    return coded.reshape(-1).astype(np.uint8)


def viterbi_decode(soft: np.ndarray, message_bits: int) -> np.ndarray:
    """The most likely `message_bits` bits given soft coded values (positive = 1), tail-terminated."""
    steps = message_bits + MEMORY
    soft = np.asarray(soft, dtype=np.float32)
    if soft.shape != (steps * RATE,):
        raise ValueError(f"expected {steps * RATE} soft values, got {soft.shape}")
    branch = soft.reshape(steps, RATE) @ _SIGNS.reshape(-1, RATE).T  # (steps, STATES*2)
    branch = branch.reshape(steps, STATES, 2)
    metric = np.full(STATES, -np.inf, dtype=np.float32)
    metric[0] = 0.0
    choices = np.empty((steps, STATES), dtype=np.uint8)
    for t in range(steps):
        candidates = metric[_PREDECESSORS] + branch[t]
        choice = np.argmax(candidates, axis=1)
        choices[t] = choice
        metric = np.take_along_axis(candidates, choice[:, None], axis=1)[:, 0]
    state = 0
    decoded = np.empty(steps, dtype=np.uint8)
    for t in range(steps - 1, -1, -1):
        decoded[t] = _INPUTS[state]
        state = _PREDECESSORS[state, choices[t, state]]
    return decoded[:message_bits]
