"""Near-duplicates by perceptual hash: the first sample in key order is kept, every later copy points to it.

The pass runs once, after every shard is scored and before anything is written, over the hashes the
checkpoints recorded — so its result depends only on the dataset, never on which engine ran, in which
order workers finished, or where a killed job was resumed.

Samples are visited in key order (ties: shard order, then position in the shard). A sample within
`max_distance` bits of an earlier *kept* sample (a representative) is a duplicate of the earliest such
one; otherwise it becomes a representative itself. Comparing only with representatives keeps chains
(A~B~C with A and C far apart) from growing clusters. A dropped sample is a representative too: a copy of
an opted-out, AI-generated or unsafe picture is dropped as its duplicate, since a re-upload that lost the
metadata is still the same picture.

Candidates are found by multi-index hashing: the 64 bits are cut into `max_distance + 1` blocks, and two
hashes within `max_distance` bits agree exactly on at least one block (pigeonhole), so only samples sharing
a block value are compared. Memory: the hashes and keys of the whole dataset (tens of bytes a sample).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from guard.provenance.credentials.fingerprint import HASH_BITS, hamming


@dataclass(frozen=True)
class HashedSample:
    """One sample's place in key order and its hash (`ident` is returned in the results)."""

    order: tuple
    ident: tuple
    value: int


def _blocks(max_distance: int) -> list[tuple[int, int]]:
    """(shift, mask) of `max_distance + 1` nearly equal bit blocks covering all 64 bits."""
    count = min(HASH_BITS, max_distance + 1)
    bounds = [round(i * HASH_BITS / count) for i in range(count + 1)]
    return [(low, (1 << (high - low)) - 1) for low, high in pairwise(bounds)]


def near_duplicates(samples: Iterable[HashedSample], max_distance: int) -> dict[tuple, tuple[tuple, int]]:
    """ident -> (the representative's ident, Hamming distance) for every duplicate; others are absent."""
    ordered = sorted(samples, key=lambda s: s.order)
    blocks = _blocks(max_distance)
    index: list[dict[int, list[int]]] = [defaultdict(list) for _ in blocks]
    representatives: list[HashedSample] = []
    found: dict[tuple, tuple[tuple, int]] = {}
    for sample in ordered:
        keys = [(sample.value >> shift) & mask for shift, mask in blocks]
        candidates = sorted({r for table, key in zip(index, keys, strict=True) for r in table.get(key, ())})
        match = None
        for position in candidates:  # representatives in key order: the earliest within reach wins
            distance = hamming(representatives[position].value, sample.value)
            if distance <= max_distance:
                match = (representatives[position].ident, distance)
                break
        if match is not None:
            found[sample.ident] = match
            continue
        for table, key in zip(index, keys, strict=True):
            table[key].append(len(representatives))
        representatives.append(sample)
    return found
