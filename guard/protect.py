"""Protect an image: invisible watermark, signed C2PA manifest, record in the manifest store, atomic file.

Order of operations, chosen so that a crash never leaves a published file without its record:

1. watermark the pixels, encode, sign — all in memory, nothing written yet;
2. write the signed bytes to a temporary file beside the output (fsynced);
3. insert the store record and commit;
4. rename the temporary file over the output.

A crash before 3 leaves no record and no output (at most a hidden `.tmp` file); a crash between 3 and 4
leaves a record whose file never appeared — harmless, its payload is simply never seen — but never an
image in the world that the store cannot resolve. If the rename itself fails, the record is removed.

An image below the watermark's size floor (an icon) is still signed and recorded, without a watermark: its
manifest claims no soft binding, its record keeps a payload that no image carries (scheme `none`) and its
fingerprints, and the result says why (`watermark: null`, `watermark_reason`). `require_watermark` refuses
such an image instead.

`protect_paths` is the loop behind `guard protect`: one `FileResult` per input, in order.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from guard.errors import GuardError, user_errors
from guard.files import FileResult, atomic_path
from guard.images import ENCODE_OPTIONS, WRITE_FORMATS, iter_image_files, list_image_files, load_image, read_file
from guard.provenance.credentials.c2pa import (
    INPUT_TO,
    PARENT_OF,
    SIGNABLE_MIME,
    Ingredient,
    c2pa_context,
    make_signer,
    read_manifest,
    sign_asset,
)
from guard.provenance.credentials.fingerprint import fingerprints
from guard.provenance.credentials.keys import SigningIdentity
from guard.provenance.credentials.manifest import EDIT, build_manifest
from guard.provenance.credentials.source_types import DigitalSourceType
from guard.provenance.credentials.store import ManifestRecord, ManifestStore
from guard.provenance.watermarks import DEFAULT_SCHEME, WatermarkScheme, get_scheme

SIGNED_FORMATS = {suffix: fmt for suffix, fmt in WRITE_FORMATS.items() if fmt in SIGNABLE_MIME}
"""Output suffix -> Pillow format: the containers c2pa embeds a manifest in and Pillow writes."""

NO_WATERMARK = "none"
"""The scheme recorded for an image signed without a watermark."""

GENERATED = DigitalSourceType.TRAINED_ALGORITHMIC_MEDIA


@dataclass
class ProtectResult:
    """What `Protector.protect` produced for one image."""

    output: Path
    manifest_id: str
    mime: str
    has_parent: bool
    record: ManifestRecord = field(repr=False)
    scheme: str | None = None
    """The watermark scheme embedded; None when the image was signed without a watermark."""
    payload: bytes | None = None
    watermark_reason: str | None = None
    """Why there is no watermark (the image is below the scheme's size floor)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "output": str(self.output),
            "manifest_id": self.manifest_id,
            "watermark": (
                {"scheme": self.scheme, "payload": self.payload.hex()}
                if self.scheme is not None and self.payload is not None
                else None
            ),
            "mime": self.mime,
            "parent_ingredient": self.has_parent,
            "signer": self.record.signer,
        }
        if self.watermark_reason:
            out["watermark_reason"] = self.watermark_reason
        return out


@dataclass
class Protector:
    """A signing identity, a c2pa signer, a store and a watermark scheme, set up once for many images.

    `scheme` is a registered scheme name (default: ours) or a scheme object; `require_watermark` refuses an
    image the scheme cannot carry instead of signing it without a watermark.
    """

    identity: SigningIdentity
    store: ManifestStore
    scheme: str | WatermarkScheme = DEFAULT_SCHEME
    require_watermark: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.scheme, str):
            self.scheme = get_scheme(self.scheme)
        self._signer = make_signer(self.identity)
        self._context = c2pa_context(signing=True)
        self._owns_store = False

    @classmethod
    def from_env(
        cls,
        *,
        identity: SigningIdentity | None = None,
        store: ManifestStore | None = None,
        chain: str | Path | None = None,
        key: str | Path | None = None,
        tsa_url: str | None = None,
        store_url: str | None = None,
        scheme: str | WatermarkScheme = DEFAULT_SCHEME,
        require_watermark: bool = False,
    ) -> Protector:
        """What `guard protect` uses: the identity from `chain`/`key`/`tsa_url`, else GUARD_SIGN_* and
        GUARD_TSA_URL, else the local one; the store at `store_url`, else GUARD_STORE_URL, else SQLite in
        GUARD_HOME. A store opened here is closed by `close()` (or at the end of a `with` block)."""
        identity = identity or SigningIdentity.load(chain=chain, key=key, tsa_url=tsa_url)
        opened = store is None
        store = store or ManifestStore.open(store_url)
        try:
            protector = cls(identity=identity, store=store, scheme=scheme, require_watermark=require_watermark)
        except BaseException:
            if opened:
                store.close()
            raise
        protector._owns_store = opened
        return protector

    def close(self) -> None:
        """Close the store if this protector opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Protector:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def min_side(self) -> int | None:
        """The shortest side the watermark scheme can carry (None: no floor)."""
        return getattr(self.scheme, "min_side", None)

    def too_small(self, size: tuple[int, int]) -> str | None:
        """Why an image of `size` cannot carry the watermark, or None when it can."""
        floor = self.min_side
        if floor and min(size) < floor:
            return f"{size[0]}x{size[1]} is below the {self.scheme.name} watermark's {floor}x{floor} floor"
        return None

    def protect(
        self,
        image: Image.Image,
        output_path: str | Path,
        *,
        source_type: str = GENERATED,
        generator: dict[str, Any] | None = None,
        prompt: str | None = None,
        include_prompt: bool = False,
        policy_decision: dict[str, Any] | None = None,
        training_mining: str | None = "notAllowed",
        ingredient: Ingredient | None = None,
        icc_profile: bytes | None = None,
    ) -> ProtectResult:
        """Watermark, sign, record and write one image. `icc_profile` is the colour profile the pixels are in
        (kept, so colours do not shift)."""
        output = Path(output_path)
        fmt = output_format(output)
        mime = SIGNABLE_MIME[fmt]
        too_small = self.too_small(image.size)
        if too_small and self.require_watermark:
            raise GuardError(f"{output.name}: {too_small}; protect a larger image or drop --require-watermark.")
        scheme = None if too_small else self.scheme
        payload = self.store.new_payload(self.scheme.payload_bytes)
        marked = image if scheme is None else scheme.embed(image, payload)  # every scheme reads pixels as RGB
        encoded = encode(marked, fmt, icc_profile=icc_profile)
        manifest_id = f"urn:c2pa:{uuid.uuid4()}"
        definition = build_manifest(
            title=output.name,
            source_type=source_type,
            watermark_scheme=scheme.name if scheme is not None else None,
            payload=payload if scheme is not None else None,
            generator=generator,
            prompt=prompt,
            include_prompt=include_prompt,
            policy_decision=policy_decision,
            training_mining=training_mining,
            has_parent=ingredient is not None and ingredient.is_parent,
            input_ingredient=ingredient is not None and ingredient.relationship == INPUT_TO,
        )
        definition["label"] = manifest_id
        signed, manifest_store = sign_asset(
            definition,
            encoded,
            mime,
            self._signer,
            ingredient=ingredient,
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
            scheme=scheme.name if scheme is not None else NO_WATERMARK,
            asset_sha256=hashlib.sha256(signed).hexdigest(),
        )
        write_and_record(signed, output, record, self.store)
        return ProtectResult(
            output=output,
            manifest_id=manifest_id,
            mime=mime,
            has_parent=ingredient is not None and ingredient.is_parent,
            record=record,
            scheme=scheme.name if scheme is not None else None,
            payload=payload if scheme is not None else None,
            watermark_reason=(f"{too_small}; the store can still find it by its fingerprint" if too_small else None),
        )

    def protect_file(
        self,
        input_path: str | Path,
        output_path: str | Path | None = None,
        *,
        in_place: bool = False,
        source_type: str = GENERATED,
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
        if reading.present or source_type == EDIT:
            if init_image is not None:
                raise GuardError(
                    f"{source.name} already has a history (or is an edit); an init image cannot be added to it."
                )
            ingredient = Ingredient.from_bytes(data, source.name, PARENT_OF)
        elif init_image is not None:
            init = Path(init_image)
            ingredient = Ingredient.from_bytes(read_file(init), init.name, INPUT_TO)
        return self.protect(
            image, output, source_type=source_type, ingredient=ingredient, icc_profile=_icc_of(data), **options
        )


def protect_paths(
    inputs: Sequence[str | Path],
    *,
    output: str | Path | None = None,
    output_dir: str | Path | None = None,
    in_place: bool = False,
    init_image: str | Path | None = None,
    protector: Protector | Callable[[], Protector] | None = None,
    **options: Any,
) -> Iterator[FileResult[ProtectResult]]:
    """Protect files and folders (image files inside folders, recursively): one `FileResult` per image, in order.

    One input file: written to `output`, or over itself with `in_place`. Several inputs or a folder: into
    `output_dir` (names kept; `.png` where the format cannot be written), or each over itself with
    `in_place`. `options` are `Protector.protect_file`'s (`source_type`, `generator`, `prompt`,
    `include_prompt`, `training_mining`, ...). `protector` is a `Protector`, or a function that opens one
    (called after the inputs are checked, and the protector closed at the end); None means
    `Protector.from_env`. Usage mistakes (an output file for several inputs, a folder without images) raise
    before any key or store is opened; a file that cannot be protected is an error value and the others go on.
    """
    sources = [Path(p) for p in inputs]
    single = len(sources) == 1 and not sources[0].is_dir() and output_dir is None
    if not single and output is not None:
        raise GuardError("-o names one output file; for several inputs or a folder use -d DIR.")
    if not single and init_image is not None:
        raise GuardError("--init-image belongs to one generated image; give one input with it.")
    if single:
        targets: list[tuple[Path, Path | GuardError | None]] = [(sources[0], None if in_place else output)]
        resolve_output(sources[0], output, in_place)  # before any key or store is opened
    else:
        list_image_files(sources)  # a folder without images is an error, before any key or store is opened
        targets = list(batch_outputs(sources, output_dir, in_place=in_place))
    own = not isinstance(protector, Protector)
    if own:
        protector = (protector or Protector.from_env)()
    try:
        for source, target in targets:
            try:
                if isinstance(target, GuardError):
                    raise target
                result = protector.protect_file(source, target, in_place=in_place, init_image=init_image, **options)
            except user_errors() as exc:
                yield FileResult(path=source, error=str(exc))
            else:
                yield FileResult(path=source, value=result)
    finally:
        if own:
            protector.close()


def protect_image(
    image: Image.Image,
    output_path: str | Path,
    *,
    source_type: str = GENERATED,
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

    Without `protector`, one is set up for this call (`Protector.from_env()`); pass a `Protector` to protect
    many images without repeating that.
    """
    if protector is None:
        with Protector.from_env() as own:
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
        relationship = PARENT_OF if source_type == EDIT else INPUT_TO
        ingredient = Ingredient.from_bytes(read_file(parent), parent.name, relationship)
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
        with Protector.from_env() as own:
            return own.protect_file(input_path, output_path, in_place=in_place, **options)
    return protector.protect_file(input_path, output_path, in_place=in_place, **options)


def batch_outputs(
    inputs: Sequence[str | Path], output_dir: str | Path | None, *, in_place: bool = False
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
        suffix = source.suffix if source.suffix.lower() in SIGNED_FORMATS else ".png"
        output = Path(output_dir) / f"{source.stem}{suffix}"
        if output in taken:
            yield source, GuardError(f"{output} would also be written for {taken[output]}; rename one of them.")
            continue
        taken[output] = source
        yield source, output


def output_format(path: Path) -> str:
    """The Pillow format we write for an output path, or a one-line error naming the supported suffixes."""
    fmt = SIGNED_FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(SIGNED_FORMATS))
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


def _icc_of(data: bytes) -> bytes | None:
    """The embedded ICC profile of an RGB image file, if any (other modes were converted to sRGB-ish RGB)."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.mode in ("RGB", "RGBA", "P"):
                return probe.info.get("icc_profile") or None
    except (OSError, ValueError):
        pass
    return None
