"""Protect an image: invisible watermark, signed C2PA manifest, record in the manifest store, atomic file.

Order of operations, chosen so that a crash never leaves a published file without its record:

1. watermark the pixels, encode, sign — all in memory, nothing written yet;
2. write the signed bytes to a temporary file beside the output (fsynced);
3. insert the store record and commit;
4. rename the temporary file over the output.

A crash before 3 leaves no record and no output (at most a hidden `.tmp` file); a crash between 3 and 4
leaves a record whose file never appeared — harmless, its payload is simply never seen — but never an
image in the world that the store cannot resolve. If the rename itself fails, the record is removed.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from guard.errors import GuardError
from guard.files import atomic_path
from guard.images import ENCODE_OPTIONS, WRITE_FORMATS, iter_image_files, load_image, read_file
from guard.provenance.credentials.c2pa import SIGNABLE_MIME, c2pa_context, make_signer, read_manifest, sign_asset
from guard.provenance.credentials.fingerprint import fingerprints
from guard.provenance.credentials.keys import SigningIdentity
from guard.provenance.credentials.manifest import PARENT_LABEL, build_manifest
from guard.provenance.credentials.store import ManifestRecord, ManifestStore
from guard.provenance.watermarks import DEFAULT_SCHEME, WatermarkScheme, get_scheme

OUTPUT_FORMATS = {suffix: fmt for suffix, fmt in WRITE_FORMATS.items() if fmt in SIGNABLE_MIME}
"""Output suffix -> Pillow format: the containers c2pa embeds a manifest in and Pillow writes."""


@dataclass
class ProtectResult:
    """What `protect_*` produced."""

    output: Path
    manifest_id: str
    scheme: str
    payload: bytes
    mime: str
    has_parent: bool
    record: ManifestRecord = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "manifest_id": self.manifest_id,
            "watermark": {"scheme": self.scheme, "payload": self.payload.hex()},
            "mime": self.mime,
            "parent_ingredient": self.has_parent,
            "signer": self.record.signer,
        }


@dataclass
class Protector:
    """A signing identity, a c2pa signer, a store and a watermark scheme, set up once for many images."""

    identity: SigningIdentity
    store: ManifestStore
    scheme: Any = None
    """A `guard.provenance.watermarks.WatermarkScheme` (name, payload_bytes, embed); None: the project's
    default, loaded when the first image is protected."""

    def __post_init__(self) -> None:
        self._signer = make_signer(self.identity)
        self._context = c2pa_context(signing=True)
        self._owns_store = False

    @classmethod
    def default(
        cls,
        *,
        identity: SigningIdentity | None = None,
        store: ManifestStore | None = None,
        scheme: Any = None,
    ) -> Protector:
        """The local identity (or GUARD_SIGN_*), the default store and the default watermark scheme.

        A store opened here is closed by `close()` (or at the end of a `with` block).
        """
        identity = identity or SigningIdentity.load()
        protector = cls(identity=identity, store=store or ManifestStore.open(), scheme=scheme)
        protector._owns_store = store is None
        return protector

    def close(self) -> None:
        """Close the store if this protector opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Protector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def protect(
        self,
        image: Image.Image,
        output_path: str | Path,
        *,
        source_type: str = "trainedAlgorithmicMedia",
        generator: dict[str, Any] | None = None,
        prompt: str | None = None,
        include_prompt: bool = False,
        policy_decision: dict[str, Any] | None = None,
        training_mining: str | None = "notAllowed",
        ingredient: tuple[bytes, str, str, str] | None = None,
        icc_profile: bytes | None = None,
    ) -> ProtectResult:
        """Watermark, sign, record and write one image. `ingredient` is (bytes, MIME, title, relationship);
        `icc_profile` is the colour profile the pixels are in (kept, so colours do not shift)."""
        output = Path(output_path)
        fmt = output_format(output)
        mime = SIGNABLE_MIME[fmt]
        if self.scheme is None:
            self.scheme = default_scheme()
        payload = self.store.new_payload(self.scheme.payload_bytes)
        marked = self.scheme.embed(image, payload)  # every scheme reads the pixels as RGB
        encoded = encode(marked, fmt, icc_profile=icc_profile)
        manifest_id = f"urn:c2pa:{uuid.uuid4()}"
        definition = build_manifest(
            title=output.name,
            source_type=source_type,
            watermark_scheme=self.scheme.name,
            payload=payload,
            generator=generator,
            prompt=prompt,
            include_prompt=include_prompt,
            policy_decision=policy_decision,
            training_mining=training_mining,
            has_parent=ingredient is not None and ingredient[3] == "parentOf",
            input_ingredient=ingredient is not None and ingredient[3] == "inputTo",
        )
        definition["label"] = manifest_id
        c2pa_ingredient = None
        if ingredient is not None:
            data, ingredient_mime, title, relationship = ingredient
            spec = {"title": title, "relationship": relationship}
            if relationship == "parentOf":
                spec["label"] = PARENT_LABEL
            c2pa_ingredient = (spec, data, ingredient_mime)
        signed, manifest_store = sign_asset(
            definition,
            encoded,
            mime,
            self._signer,
            ingredient=c2pa_ingredient,
            context=self._context,
            identity=self.identity,
        )
        record = ManifestRecord(
            manifest_id=manifest_id,
            payload=payload,
            manifest_store=manifest_store,
            mime=mime,
            fingerprints=fingerprints(marked),
            signer=self.identity.subject,
            scheme=self.scheme.name,
            asset_sha256=hashlib.sha256(signed).hexdigest(),
        )
        write_and_record(signed, output, record, self.store)
        return ProtectResult(
            output=output,
            manifest_id=manifest_id,
            scheme=self.scheme.name,
            payload=payload,
            mime=mime,
            has_parent=ingredient is not None and ingredient[3] == "parentOf",
            record=record,
        )

    def protect_file(
        self,
        input_path: str | Path,
        output_path: str | Path | None = None,
        *,
        in_place: bool = False,
        source_type: str = "trainedAlgorithmicMedia",
        init_image: str | Path | None = None,
        **options: Any,
    ) -> ProtectResult:
        """Protect an existing file.

        An input that carries Content Credentials, or any input with `source_type="edit"` (an existing
        photo), becomes the `parentOf` ingredient, so its history is kept; a plain generated file is signed
        as created, with `init_image` (image-to-image) as an `inputTo` ingredient.
        """
        source = Path(input_path)
        output = resolve_output(source, output_path, in_place)
        output_format(output)
        data = read_file(source)
        image = load_image(data, name=str(source))
        ingredient = None
        reading = read_manifest(data)
        if reading.present and reading.store is None and reading.remote_url is None:
            raise GuardError(
                f"{source.name} carries Content Credentials that c2pa cannot carry forward ({reading.error}); "
                "protect a copy without them if you accept losing that history."
            )
        if reading.present or source_type == "edit":
            if init_image is not None:
                raise GuardError(
                    f"{source.name} already has a history (or is an edit); an init image cannot be added to it."
                )
            ingredient = (data, _mime_of(data, source), source.name, "parentOf")
        elif init_image is not None:
            init = Path(init_image)
            init_data = _read(init)
            ingredient = (init_data, _mime_of(init_data, init), init.name, "inputTo")
        return self.protect(
            image, output, source_type=source_type, ingredient=ingredient, icc_profile=_icc_of(data), **options
        )


def protect_image(
    image: Image.Image,
    output_path: str | Path,
    *,
    source_type: str = "trainedAlgorithmicMedia",
    generator: dict[str, Any] | None = None,
    prompt: str | None = None,
    include_prompt: bool = False,
    policy_decision: dict[str, Any] | None = None,
    parent_path: str | Path | None = None,
    training_mining: str | None = "notAllowed",
    protector: Protector | None = None,
) -> ProtectResult:
    """Protect a generated image. `parent_path` (e.g. an image-to-image init image) is recorded as an
    `inputTo` ingredient; with `source_type="edit"` it is the `parentOf` ingredient instead.

    Without `protector`, one is set up for this call (identity, signer, store); pass a `Protector` to
    protect many images without repeating that.
    """
    if protector is None:
        with Protector.default() as own:
            return protect_image(
                image,
                output_path,
                source_type=source_type,
                generator=generator,
                prompt=prompt,
                include_prompt=include_prompt,
                policy_decision=policy_decision,
                parent_path=parent_path,
                training_mining=training_mining,
                protector=own,
            )
    ingredient = None
    if parent_path is not None:
        parent = Path(parent_path)
        data = _read(parent)
        relationship = "parentOf" if source_type == "edit" else "inputTo"
        ingredient = (data, _mime_of(data, parent), parent.name, relationship)
    return protector.protect(
        image,
        output_path,
        source_type=source_type,
        generator=generator,
        prompt=prompt,
        include_prompt=include_prompt,
        policy_decision=policy_decision,
        training_mining=training_mining,
        ingredient=ingredient,
    )


def protect_file(
    input_path: str | Path,
    output_path: str | Path | None = None,
    *,
    in_place: bool = False,
    protector: Protector | None = None,
    **options: Any,
) -> ProtectResult:
    """Protect an existing image file into `output_path` (or over itself with `in_place=True`)."""
    if protector is None:
        with Protector.default() as own:
            return own.protect_file(input_path, output_path, in_place=in_place, **options)
    return protector.protect_file(input_path, output_path, in_place=in_place, **options)


def default_scheme(name: str | None = None) -> WatermarkScheme:
    """A watermark scheme from guard.provenance.watermarks: `name`, else the project's default (ours)."""
    return get_scheme(name or DEFAULT_SCHEME)


def batch_outputs(
    inputs: Iterable[str | Path], output_dir: str | Path | None, *, in_place: bool = False
) -> Iterator[tuple[Path, Path | GuardError]]:
    """(input, output) for every image named or found in named folders; an error instead of an output
    when two inputs would write the same file. Outputs keep the input's name (and suffix when we can
    write that format, else `.png`) in `output_dir`, or replace the inputs with `in_place`."""
    if (output_dir is None) == (not in_place):
        raise GuardError("For several inputs give an output folder (-d DIR) or --in-place.")
    taken: dict[Path, Path] = {}
    for source in iter_image_files(inputs):
        if in_place:
            yield source, source
            continue
        suffix = source.suffix if source.suffix.lower() in OUTPUT_FORMATS else ".png"
        output = Path(output_dir) / f"{source.stem}{suffix}"
        if output in taken:
            yield source, GuardError(f"{output} would also be written for {taken[output]}; rename one of them.")
            continue
        taken[output] = source
        yield source, output


def output_format(path: Path) -> str:
    """The Pillow format we write for an output path, or a one-line error naming the supported suffixes."""
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(OUTPUT_FORMATS))
        raise GuardError(
            f"Cannot write Content Credentials into {path.name!r}: the output must end in one of {supported}."
        )
    return fmt


def resolve_output(source: Path, output_path: str | Path | None, in_place: bool) -> Path:
    """The output path; the input is only ever replaced when `in_place` is asked for."""
    if in_place:
        if output_path is not None and Path(output_path).resolve() != source.resolve():
            raise GuardError("Give either an output path or --in-place, not both.")
        return source
    if output_path is None:
        raise GuardError("Give an output path (-o OUT), or --in-place to replace the input.")
    output = Path(output_path)
    if output.resolve() == source.resolve():
        raise GuardError(f"The output {output} is the input; use --in-place to replace it.")
    return output


def encode(image: Image.Image, fmt: str, *, icc_profile: bytes | None = None) -> bytes:
    """Encode an RGB image in a format we sign (with its colour profile, if given)."""
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    try:
        extra = {"icc_profile": icc_profile} if icc_profile else {}
        image.save(buffer, fmt, **ENCODE_OPTIONS.get(fmt, {}), **extra)
    except (KeyError, OSError) as exc:
        raise GuardError(f"This installation cannot encode {fmt} images: {exc}.") from None
    return buffer.getvalue()


def write_and_record(data: bytes, output: Path, record: ManifestRecord, store: ManifestStore) -> None:
    """Write the file atomically and commit its record, in the order the module docstring explains."""
    committed = False
    try:
        with atomic_path(output) as tmp:
            tmp.write_bytes(data)
            store.add(record)
            committed = True
    except BaseException:
        if committed:
            store.remove(record.manifest_id)
        raise


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GuardError(f"Cannot read {path}: {exc.strerror or exc}.") from None


def _icc_of(data: bytes) -> bytes | None:
    """The embedded ICC profile of an RGB image file, if any (other modes were converted to sRGB-ish RGB)."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.mode in ("RGB", "RGBA", "P"):
                return probe.info.get("icc_profile") or None
    except (OSError, ValueError):
        pass
    return None


def _mime_of(data: bytes, path: Path) -> str:
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
    except Exception:
        fmt = None
    if fmt in SIGNABLE_MIME:
        return SIGNABLE_MIME[fmt]
    if fmt == "MPO":
        return "image/jpeg"
    if fmt == "GIF":
        return "image/gif"
    raise GuardError(f"{path.name}: c2pa cannot take this format as an ingredient ({fmt or 'unknown'}).")
