"""Dataset filtering before training: shards in, the same layout out, minus unsafe, opted-out, synthetic and
duplicate samples, with every score and piece of evidence recorded (`guard.filter_dataset` runs a job).

Modules: `samples` (shard, sample, chunk), `readers` (WebDataset, folders, Parquet), `stages` (decode,
inspect, score — what both engines run), `captions` (the caption check), `optout` and `origin` (evidence),
`dedup` (near-duplicates), `decisions`, `workdir` (checkpoints), `writers`, `summary`, `engines`.
"""
