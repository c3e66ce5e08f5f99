"""The environment variables the policies package reads, declared once: name -> (default, meaning)."""

POLICY = "GUARD_POLICY"

SETTINGS: dict[str, tuple[str, str]] = {
    POLICY: ("default", "policy used when a command is given no `--policy`: a bundled name or a YAML file"),
}
