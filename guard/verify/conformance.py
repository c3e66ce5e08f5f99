"""Is the signer a C2PA conforming product? A look-up in the C2PA conforming products list.

The list (`conforming-products-list.json` from the C2PA conformance program) is taken as a path or an http(s)
URL (`GUARD_CONFORMING_PRODUCTS` or `--conforming-products`); it is never fetched unless named. A signer matches
a product when its certificate subject carries the product's CN and O (and OU where the product names one;
the country is not compared). The answer is `yes` only when the signature also chains to a configured trust
anchor: a certificate DN alone can be written by anyone.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.errors import ConfigError
from guard.settings import CONFORMING_PRODUCTS

DN_FIELDS = ("CN", "O", "OU")


@dataclass(frozen=True)
class ConformingProducts:
    """The conforming products list, loaded once."""

    products: tuple[dict[str, Any], ...]
    source: str

    @classmethod
    def load(cls, ref: str | Path) -> ConformingProducts:
        """Read the list from a file path or an http(s) URL."""
        ref = str(ref)
        try:
            if ref.startswith(("http://", "https://")):
                with urllib.request.urlopen(ref, timeout=20) as response:
                    raw = response.read()
            else:
                raw = Path(ref).expanduser().read_bytes()
        except OSError as exc:
            raise ConfigError(f"Cannot read the conforming products list {ref}: {exc}.") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise ConfigError(f"The conforming products list {ref} is not JSON.") from None
        if not isinstance(data, list) or not all(isinstance(p, dict) and "product" in p for p in data):
            raise ConfigError(f"{ref} is not a C2PA conforming products list (a JSON array of product records).")
        return cls(products=tuple(data), source=ref)

    @classmethod
    def from_env(cls) -> ConformingProducts | None:
        ref = os.environ.get(CONFORMING_PRODUCTS)
        return cls.load(ref) if ref else None

    def match(self, subject: dict[str, str] | None) -> dict[str, Any] | None:
        """The first conformant generator product whose DN the certificate subject carries, or None."""
        if not subject:
            return None
        for record in self.products:
            product = record.get("product") or {}
            if record.get("status") != "conformant" or product.get("productType") != "generatorProduct":
                continue
            dn = product.get("DN") or {}
            if all((dn.get(k) or "") in ("", subject.get(k, "")) for k in DN_FIELDS) and dn.get("CN") and dn.get("O"):
                return record
        return None


def conforming_product(
    products: ConformingProducts | None,
    subject: dict[str, str] | None,
    trusted: bool,
    signals: list[str] = (),
) -> dict[str, Any]:
    """`{"status": "yes"|"no"|"unknown", "reason", "product"?, ...}` for the active manifest's signer."""
    if products is None:
        return {"status": "unknown", "reason": "no conforming products list configured"}
    if not subject:
        return {"status": "unknown", "reason": "the signer's certificate could not be read"}
    record = products.match(subject)
    if record is None:
        return {
            "status": "no",
            "reason": f"{subject.get('CN') or '?'} ({subject.get('O') or '?'}) is not on the conforming products list",
        }
    product = record["product"]
    found = {
        "product": product["DN"].get("CN"),
        "applicant": record.get("applicant"),
        "max_assurance_level": (product.get("assurance") or {}).get("maxAssuranceLevel"),
        "conformance_date": (record.get("dates") or {}).get("conformance"),
    }
    if not trusted:
        return {
            "status": "unknown",
            "reason": "the certificate names a conforming product but does not chain to a configured trust anchor",
            **found,
        }
    disallowed = product.get("disallowedSignals") or {}
    barred = sorted(set(signals) & {*disallowed.get("inception", []), *disallowed.get("transformation", [])})
    result = {"status": "yes", "reason": "a trusted certificate of a conforming product", **found}
    if barred:
        result["disallowed_signals"] = barred
        result["reason"] += f", but the product is not conformant for {', '.join(barred)}"
    return result
