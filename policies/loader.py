"""Find, read and validate a policy file (bundled name or path) and compile its rules once."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from policies.errors import PolicyError
from policies.schema import Policy
from policies.settings import POLICY

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED = ("default", "strict", "dataset")
ENV_POLICY = POLICY


def bundled_policies() -> list[str]:
    """Names of the policies that ship with the package."""
    return list(BUNDLED)


def resolve(ref: str | Path | None) -> Path:
    """The file behind a policy reference: a bundled name, a path, or None for `GUARD_POLICY` / `default`."""
    if ref is None:
        ref = os.environ.get(ENV_POLICY) or "default"
    if isinstance(ref, str) and ref in BUNDLED:
        return DATA_DIR / f"{ref}.yaml"
    path = Path(ref).expanduser()
    if path.is_file():
        return path.resolve()
    if path.exists():
        raise PolicyError(f"{path}: a policy must be a YAML file, not a folder.")
    raise PolicyError(
        f"policy {str(ref)!r} is neither a bundled policy ({', '.join(BUNDLED)}) nor an existing YAML file."
    )


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not a UTF-8 text file.") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PolicyError(_one_line(f"{path}: {where}invalid YAML ({problem}).")) from None


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _validation_message(path: Path, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    message = first["msg"].removeprefix("Value error, ")
    field = _field(first["loc"])
    if first["type"] == "extra_forbidden":
        message = "unknown field (check the spelling)"
    elif first["type"] == "missing":
        message = "required field is missing"
    elif isinstance(first.get("input"), str | int | float | bool) and len(repr(first["input"])) <= 60:
        message = f"{message} (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return _one_line(f"{path}: field {field}: {message}{more}.")


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _load_name_list(ref: str, policy_path: Path, field: str) -> list[str]:
    """A list of names: a bundled list (`public_figures`) or a YAML file relative to the policy file."""
    bundled = DATA_DIR / f"{ref}.yaml"
    path = bundled if bundled.is_file() else (policy_path.parent / ref).resolve()
    if not path.is_file():
        raise PolicyError(f"{policy_path}: field {field}: name list {ref!r} is neither bundled nor a file.")
    data = _read_yaml(path)
    groups = data.values() if isinstance(data, dict) else [data]
    names: list[str] = []
    for group in groups:
        if not isinstance(group, list) or not all(isinstance(n, str) and n.strip() for n in group):
            raise PolicyError(f"{path}: a name list must be lists of names (text), grouped under headings.")
        names.extend(group)
    return names


def parse_policy(data: Any, path: Path) -> Policy:
    """Validate already-parsed YAML as a policy and compile its rules; `path` is used in messages."""
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: a policy file must be a mapping with name, version and categories.")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_validation_message(path, exc)) from None
    problems = policy.reference_problems()
    if problems:
        field, problem = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PolicyError(f"{path}: field {field}: {problem}{more}.")
    return compile_rules(policy, path)


def compile_rules(policy: Policy, path: Path | None = None) -> Policy:
    """Compile the prompt rules of `policy` once (name lists are found next to `path` or bundled)."""
    from policies.matching import Matcher

    path = path or Path("<policy>")
    name_lists: dict[str, list[str]] = {}
    for cat_name, category in policy.categories.items():
        for i, ref in enumerate(category.prompt.name_lists):
            if ref not in name_lists:
                name_lists[ref] = _load_name_list(ref, path, f"categories.{cat_name}.prompt.name_lists.{i}")
    try:
        matcher = Matcher(policy, name_lists)
    except (ValueError, TypeError) as exc:
        raise PolicyError(f"{path}: {exc}.") from None
    policy._matcher = matcher
    policy._source = path
    return policy


def _merge(base: Any, override: Any) -> Any:
    """Deep-merge mappings (the override wins); anything else, lists included, is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return override


def _read_policy_data(path: Path, seen: tuple[Path, ...] = ()) -> Any:
    """The YAML of a policy file, with `extends: <bundled name or path>` resolved by deep merge."""
    data = _read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    ref = data.pop("extends")
    if not isinstance(ref, str) or not ref.strip():
        raise PolicyError(f"{path}: field extends: must name a bundled policy or a policy file.")
    base_path = DATA_DIR / f"{ref}.yaml" if ref in BUNDLED else (path.parent / ref).resolve()
    if not base_path.is_file():
        raise PolicyError(f"{path}: field extends: {ref!r} is neither a bundled policy nor a file.")
    if base_path in seen or base_path == path:
        raise PolicyError(f"{path}: field extends: policies extend each other in a loop.")
    return _merge(_read_policy_data(base_path, (*seen, path)), data)


@lru_cache(maxsize=32)
def _load_cached(path: Path, mtime_ns: int, size: int) -> Policy:
    return parse_policy(_read_policy_data(path), path)


def load_policy(ref: str | Path | None = None) -> Policy:
    """Load a bundled policy by name (`default`, `strict`, `dataset`) or a policy YAML file by path.

    None means the `GUARD_POLICY` environment variable, else `default`. Raises `PolicyError` with one line
    naming the file, the field and the problem. Loaded policies are cached until the file changes.
    """
    if isinstance(ref, Policy):
        return ref
    path = resolve(ref)
    try:
        stat = path.stat()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    return _load_cached(path, stat.st_mtime_ns, stat.st_size)
