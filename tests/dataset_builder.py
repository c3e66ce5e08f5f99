"""Build small training sets from real photos for the dataset-filter tests, with what each sample must become.

Photos: scikit-image's and matplotlib's bundled samples and the shared format fixtures. Every special case
is made with the real tool that makes it in the wild: Content Credentials signed by the project's own
signing code with a test identity, Stable Diffusion's mark by invisible-watermark's dwtDct encoder with
the message txt2img.py embeds, our mark by our scheme, A1111-style PNG text chunks, IPTC/PLUS XMP. Unsafe
captions are read from the shared prompt corpus at run time (never written into the repository); no
NSFW imagery is used anywhere.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "prompt-corpus" / "corpus.jsonl"
FORMATS = SHARED / "fixtures" / "formats"
OPTED_OUT_DOMAIN = "opted-out.example"
OPTED_OUT_ARTIST = "Halvard Quenneville"
"""A made-up artist name: the opt-out list names it, one caption mentions it."""


def photo(name: str, side: int = 512) -> Image.Image:
    """A real photo, centre-cropped to a square."""
    import matplotlib.cbook
    import skimage.data

    if name == "grace_hopper":
        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
            source = image.convert("RGB")
    elif (FORMATS / name).is_file():
        with Image.open(FORMATS / name) as image:
            source = ImageOps.exif_transpose(image).convert("RGB")
    else:
        source = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    return ImageOps.fit(source, (side, side))


def jpeg(image: Image.Image, quality: int = 90, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


def png(image: Image.Image, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def unsafe_captions(count: int) -> list[str]:
    """Unsafe prompts from the shared corpus that the dataset policy's rules drop (read at run time)."""
    from policies import decide_prompt, load_policy

    policy = load_policy("dataset")
    found = []
    with CORPUS.open(encoding="utf-8") as corpus:
        for line in corpus:
            entry = json.loads(line)
            if entry.get("label") == "unsafe" and decide_prompt(policy, entry["prompt"]).decision == "block":
                found.append(entry["prompt"])
                if len(found) == count:
                    return found
    raise AssertionError("the prompt corpus has too few unsafe prompts the rules drop")


def public_figure_name() -> str:
    """A name from the policy's bundled list of public figures."""
    import yaml

    from policies.loader import DATA_DIR

    lists = yaml.safe_load((DATA_DIR / "public_figures.yaml").read_text(encoding="utf-8"))
    return next(iter(lists.values()))[0]


# --- provenance, made with the real tools -------------------------------------------------------------


def signed_jpeg(image: Image.Image, home: Path, assertions: list[dict[str, Any]], source_type: str) -> bytes:
    """A JPEG with a C2PA manifest signed by the project's signing code (the test identity in `home`)."""
    from guard.provenance.credentials.c2pa import make_signer, sign_asset
    from guard.provenance.credentials.keys import SigningIdentity
    from guard.provenance.credentials.source_types import DigitalSourceType

    identity = SigningIdentity.load(home)
    created = {"action": "c2pa.created", "digitalSourceType": DigitalSourceType(source_type).uri}
    manifest = {
        "claim_generator_info": [{"name": "image-guard-tests", "version": "1"}],
        "title": "sample.jpg",
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [created]}}, *assertions],
    }
    signed, _ = sign_asset(manifest, jpeg(image), "image/jpeg", make_signer(identity), identity=identity)
    return signed


def training_mining(use: str, prefix: str = "c2pa") -> dict[str, Any]:
    """A training-and-mining assertion (`c2pa.` or CAWG's `cawg.` labels) with one use for every entry."""
    entries = ("ai_generative_training", "ai_inference", "ai_training", "data_mining")
    return {"label": f"{prefix}.training-mining", "data": {"entries": {f"{prefix}.{e}": {"use": use} for e in entries}}}


def xmp_data_mining(image: Image.Image, value: str = "DMI-PROHIBITED-AIMLTRAINING") -> bytes:
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/" '
        f'plus:DataMining="http://ns.useplus.org/ldf/vocab/{value}"/></rdf:RDF></x:xmpmeta>'
    )
    return jpeg(image, xmp=packet.encode("utf-8"))


def a1111_png(image: Image.Image) -> bytes:
    """A PNG with the `parameters` text chunk AUTOMATIC1111's web UI writes."""
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        "a lighthouse at dusk\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: sd15",
    )
    return png(image, pnginfo=info)


def stable_diffusion_mark(image: Image.Image) -> Image.Image:
    """CompVis/stable-diffusion scripts/txt2img.py's put_watermark: dwtDct, bytes b"StableDiffusionV1"."""
    import cv2
    from imwatermark import WatermarkEncoder

    encoder = WatermarkEncoder()
    encoder.set_watermark("bytes", b"StableDiffusionV1")
    marked = encoder.encode(cv2.cvtColor(np.array(image), cv2.COLOR_RGB2BGR), "dwtDct")
    return Image.fromarray(marked[:, :, ::-1])


def our_mark(image: Image.Image) -> Image.Image:
    from guard.provenance.watermarks import get_scheme

    return get_scheme("guard").embed(image, bytes.fromhex("0badc0ffee01"))


def corrupt_jpeg(image: Image.Image) -> bytes:
    data = jpeg(image)
    return data[: len(data) // 3]


# --- writing shards ------------------------------------------------------------------------------------


@dataclass
class Item:
    """One sample to write, and what the filter must decide about it."""

    key: str
    image: bytes | None
    caption: str
    expect: str
    categories: set[str] = field(default_factory=set)
    ext: str = "jpg"
    url: str | None = None
    headers: dict[str, str] | None = None
    duplicate_of: str | None = None


def write_tar(path: Path, items: list[Item]) -> None:
    """An img2dataset-style shard: `<key>.<ext>`, `.txt`, `.json` per sample, and the sibling .parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for item in items:
            meta: dict[str, Any] = {"url": item.url or f"https://photos.example.org/{item.key}.jpg", "key": item.key}
            meta["status"] = "success"
            if item.headers:
                meta["headers"] = item.headers
            members = {"txt": item.caption.encode("utf-8"), "json": json.dumps(meta).encode("utf-8")}
            if item.image is not None:
                members = {item.ext: item.image, **members}
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{item.key}.{ext}")
                info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
                tar.addfile(info, io.BytesIO(data))
            rows.append({"url": meta["url"], "caption": item.caption, "key": item.key, "status": "success"})
    pq.write_table(pa.Table.from_pylist(rows), path.with_suffix(".parquet"))


def build_webdataset(root: Path, home: Path) -> tuple[dict[str, Item], Path]:
    """Three shards covering every case (and a truncated fourth); returns items by key and the opt-out file."""
    from policies import decide_prompt, load_policy

    unsafe = unsafe_captions(2)
    caption_categories = [set(decide_prompt(load_policy("dataset"), text).categories) for text in unsafe]
    figure = public_figure_name()
    astronaut = photo("astronaut")
    shard0 = [
        Item("000000000", jpeg(astronaut), "an astronaut in a white suit beside a flag", "keep"),
        Item("000000001", jpeg(photo("coffee")), unsafe[0], "drop", caption_categories[0]),
        Item(
            "000000002",
            signed_jpeg(photo("chelsea"), home, [training_mining("notAllowed")], "digitalCapture"),
            "a ginger cat looking up",
            "drop",
            {"opt_out"},
        ),
        Item("000000003", xmp_data_mining(photo("rocket")), "a rocket on the launch pad", "drop", {"opt_out"}),
        Item(
            "000000004",
            jpeg(photo("grace_hopper")),
            "portrait of a naval officer",
            "drop",
            {"opt_out"},
            url=f"https://images.{OPTED_OUT_DOMAIN}/portraits/1.jpg",
        ),
        Item(
            "000000005",
            jpeg(photo("immunohistochemistry")),
            "stained tissue under a microscope",
            "drop",
            {"opt_out"},
            headers={"X-Robots-Tag": "noai, noimageai"},
        ),
        Item("000000006", corrupt_jpeg(photo("coffee")), "a truncated file", "error", {"error"}),
    ]
    shard1 = [
        Item("000010000", jpeg(our_mark(photo("P1000827.jpg"))), "a street at noon", "drop", {"ai_origin"}),
        Item(
            "000010001",
            png(stable_diffusion_mark(photo("earth_apollo17.jpg"))),
            "the earth from space",
            "drop",
            {"ai_origin"},
            ext="png",
        ),
        Item(
            "000010002",
            signed_jpeg(photo("hubble_deep_field"), home, [], "trainedAlgorithmicMedia"),
            "galaxies in deep space",
            "drop",
            {"ai_origin"},
        ),
        Item(
            "000010003",
            jpeg(astronaut.resize((400, 400)), quality=75),
            "astronaut, smaller copy",
            "drop",
            {"duplicate"},
            duplicate_of="000000000",
        ),
        Item("000010004", a1111_png(photo("camera")), "a man with a camera", "drop", {"ai_origin"}, ext="png"),
        Item("000010005", None, "a sample whose image is missing", "error", {"error"}),
        Item(
            "000010006",
            jpeg(photo("brick")),
            f"brick wall, in the style of {OPTED_OUT_ARTIST}",
            "drop",
            {"opt_out"},
        ),
        Item(
            "000010007",
            jpeg(photo("gravel")),
            "gravel texture",
            "drop",
            {"opt_out"},
            headers={"tdm-reservation": "1"},
        ),
    ]
    shard2 = [
        Item("000020000", jpeg(photo("mars.webp")), "the surface of mars", "keep"),
        Item("000020001", jpeg(photo("grass")), "grass, close up", "keep"),
        Item("000020002", jpeg(photo("moon")), f"a photo of {figure} on stage", "review", {"public_figures"}),
        Item(
            "000020003",
            signed_jpeg(photo("retina"), home, [training_mining("constrained", "cawg")], "digitalCapture"),
            "a retina scan",
            "drop",
            {"opt_out"},
        ),
        Item("000020004", jpeg(photo("coins")), unsafe[1], "drop", caption_categories[1]),
    ]
    write_tar(root / "00000.tar", shard0)
    write_tar(root / "00001.tar", shard1)
    write_tar(root / "00002.tar", shard2)
    truncated = root / "00003.tar"
    horse = jpeg(photo("horse"))
    write_tar(truncated, [Item("000030000", horse, "a horse", "keep"), Item("000030001", jpeg(photo("page")), "", "")])
    data = truncated.read_bytes()
    truncated.write_bytes(data[: 512 + len(horse) + 3 * 1024])  # cut inside the second sample
    items = {item.key: item for item in [*shard0, *shard1, *shard2]}
    items["000030000"] = Item("000030000", None, "a horse", "keep")
    items["000030001"] = Item("000030001", None, "a printed page", "error", {"error"})
    opt_out = root.parent / "opt-out.txt"
    opt_out.write_text(f"# rights holders who asked\n{OPTED_OUT_DOMAIN}\nartist:{OPTED_OUT_ARTIST}\n", encoding="utf-8")
    return items, opt_out
