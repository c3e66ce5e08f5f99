"""Signing identities for Content Credentials: make a local CA + signer, or load the user's own chain and key.

C2PA validators (c2pa-rs) accept a signing certificate only if it is an end-entity certificate issued by a
CA (never self-signed), with key usage `digitalSignature`, an allowed extended key usage (we use
`emailProtection`), subject and authority key identifiers, and a validity period covering the signing
time. `init_identity` makes exactly that; `SigningIdentity.load` checks a user's own files for the same
things so that a mistake is one clear sentence, not a native error at signing time.

Files under `<GUARD_HOME>/keys/`: `signer.pem` (end-entity certificate then the CA), `signer.key`
(PKCS#8 private key, mode 0600, optionally encrypted), `ca.pem` (the trust anchor to give verifiers).
The CA's private key is used once to issue the signer and then discarded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from guard.errors import ConfigError
from guard.files import write_atomic
from guard.settings import SIGN_CERT, SIGN_KEY, SIGN_KEY_PASSWORD, TSA_URL, guard_home

CHAIN_FILE = "signer.pem"
KEY_FILE = "signer.key"
ANCHOR_FILE = "ca.pem"

ALLOWED_EKUS = {
    "1.3.6.1.5.5.7.3.4": "emailProtection",
    "1.3.6.1.5.5.7.3.36": "documentSigning",
    "1.3.6.1.5.5.7.3.8": "timeStamping",
    "1.3.6.1.5.5.7.3.9": "OCSPSigning",
    "1.3.6.1.4.1.311.76.59.1.9": "Microsoft C2PA signing",
    "1.3.6.1.4.1.62558.2.1": "c2pa-kp-claimSigning",
}
"""Extended key usages c2pa-rs accepts on a signing certificate by default (its built-in trust config)."""

_EC_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


def keys_dir(home: str | Path | None = None) -> Path:
    """The folder holding the local signing identity."""
    return Path(home) / "keys" if home is not None else guard_home() / "keys"


@dataclass(frozen=True)
class SigningIdentity:
    """A certificate chain and its private key, ready for c2pa-python's signer. The key never prints."""

    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    alg: str
    tsa_url: str | None
    chain_path: Path | None
    key_path: Path | None
    subject: str
    issuer: str
    not_after: dt.datetime
    fingerprint: str
    """SHA-256 of the signing certificate (DER), hex."""

    @classmethod
    def load(
        cls,
        home: str | Path | None = None,
        *,
        chain: str | Path | None = None,
        key: str | Path | None = None,
        password: str | None = None,
        tsa_url: str | None = None,
    ) -> SigningIdentity:
        """Load the identity: explicit paths, else GUARD_SIGN_CERT / GUARD_SIGN_KEY, else the local one.

        The key password comes from `password` or GUARD_SIGN_KEY_PASSWORD; the timestamp authority from
        `tsa_url` or GUARD_TSA_URL (none by default: signing works offline). Raises `ConfigError` with one
        sentence for a missing, unreadable, mismatched or expired certificate or key.
        """
        chain = chain or os.environ.get(SIGN_CERT) or None
        key = key or os.environ.get(SIGN_KEY) or None
        if (chain is None) != (key is None):
            raise ConfigError(
                "Give both the certificate chain and the private key (--cert/--key or "
                f"{SIGN_CERT}/{SIGN_KEY}), or neither to use the local identity."
            )
        if chain is None:
            folder = keys_dir(home)
            chain, key = folder / CHAIN_FILE, folder / KEY_FILE
            if not Path(chain).exists() or not Path(key).exists():
                raise ConfigError(
                    f"No signing identity in {folder}: run `guard keys init`, or point {SIGN_CERT} and "
                    f"{SIGN_KEY} to your certificate chain and private key (PEM)."
                )
        if password is None:
            password = os.environ.get(SIGN_KEY_PASSWORD) or None
        tsa_url = tsa_url or os.environ.get(TSA_URL) or None
        chain_path, key_path = Path(chain), Path(key)
        chain_pem = _read(chain_path, "certificate chain")
        certs = _parse_chain(chain_pem, chain_path)
        private_key = _load_private_key(_read(key_path, "private key"), key_path, password)
        _check_signing_certificate(certs, private_key, chain_path)
        leaf = certs[0]
        return cls(
            chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs),
            key_pem=private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            alg=_algorithm_for(private_key, key_path),
            tsa_url=tsa_url,
            chain_path=chain_path,
            key_path=key_path,
            subject=leaf.subject.rfc4514_string(),
            issuer=leaf.issuer.rfc4514_string(),
            not_after=leaf.not_valid_after_utc,
            fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        )

    def describe(self) -> dict:
        """What `guard keys show` prints: who signs, until when, and where the files are (never the key)."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "algorithm": self.alg,
            "not_after": self.not_after.isoformat(),
            "fingerprint_sha256": self.fingerprint,
            "certificate_chain": str(self.chain_path) if self.chain_path else None,
            "private_key": str(self.key_path) if self.key_path else None,
            "tsa_url": self.tsa_url,
        }


def init_identity(
    home: str | Path | None = None,
    *,
    organization: str = "image-guard",
    common_name: str | None = None,
    days: int = 730,
    password: str | None = None,
    force: bool = False,
    not_before: dt.datetime | None = None,
) -> Path:
    """Create a root CA and an ES256 end-entity signing certificate under `<home>/keys/`; return the folder.

    The signer is valid for `days` (the CA for ten years) from `not_before` (default: now, minus a few
    minutes for clock skew). Refuses to overwrite an existing identity unless `force`.
    """
    folder = keys_dir(home)
    if (folder / KEY_FILE).exists() and not force:
        raise ConfigError(f"A signing identity already exists in {folder}; use --force to replace it.")
    if days < 1:
        raise ConfigError(f"The signing certificate must be valid for at least one day, got {days}.")
    start = (not_before or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(organization, f"{organization} Content Credentials Root CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(organization, common_name or f"{organization} signer"))
        .issuer_name(ca_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        reason = exc.strerror or exc
        raise ConfigError(f"Cannot create the keys folder {folder}: {reason} (check GUARD_HOME).") from None
    key_bytes = signer_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    _write_private(folder / KEY_FILE, key_bytes)
    pem = serialization.Encoding.PEM
    write_atomic(folder / CHAIN_FILE, signer_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    write_atomic(folder / ANCHOR_FILE, ca_cert.public_bytes(pem))
    return folder


def local_trust_anchor(home: str | Path | None = None) -> Path | None:
    """The local CA certificate made by `init_identity`, if there is one."""
    path = keys_dir(home) / ANCHOR_FILE
    return path if path.exists() else None


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key atomically with mode 0600 from the first byte on."""
    previous = os.umask(0o077)
    try:
        write_atomic(path, data)
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"The {what} file {path} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read the {what} file {path}: {exc.strerror or exc}.") from None


def _parse_chain(pem: bytes, path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(f"{path} is not a PEM certificate chain.") from None
    if not certs:
        raise ConfigError(f"{path} holds no certificate.")
    return certs


def _load_private_key(pem: bytes, path: Path, password: str | None):
    try:
        return serialization.load_pem_private_key(pem, password.encode() if password else None)
    except TypeError:
        if password:
            raise ConfigError(f"The private key {path} is not encrypted, but a password was given.") from None
        raise ConfigError(f"The private key {path} is encrypted: give its password in {SIGN_KEY_PASSWORD}.") from None
    except ValueError:
        if password:
            raise ConfigError(f"Wrong password for the private key {path} (or it is not a PEM key).") from None
        raise ConfigError(f"{path} is not a readable PEM private key.") from None
    except UnsupportedAlgorithm:
        raise ConfigError(f"The private key {path} uses an algorithm C2PA signing does not support.") from None


def _algorithm_for(private_key, path: Path) -> str:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg = _EC_ALGORITHMS.get(private_key.curve.name)
        if alg:
            return alg
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    elif isinstance(private_key, rsa.RSAPrivateKey):
        return "ps256"
    raise ConfigError(
        f"The private key {path} is not one C2PA signs with: use EC P-256/P-384/P-521, Ed25519 or RSA (PSS)."
    )


def _check_signing_certificate(certs: list[x509.Certificate], private_key, chain_path: Path) -> None:
    """Refuse, in one sentence, what c2pa-rs would refuse with 'the certificate is invalid'."""
    leaf = certs[0]
    now = dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        raise ConfigError(
            f"The signing certificate in {chain_path} expired on {leaf.not_valid_after_utc:%Y-%m-%d}; "
            "renew it (or run `guard keys init --force`)."
        )
    if leaf.not_valid_before_utc > now:
        raise ConfigError(
            f"The signing certificate in {chain_path} is not valid yet "
            f"(from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC)."
        )
    public = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf_public = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != leaf_public:
        raise ConfigError(f"The private key does not belong to the first certificate in {chain_path}.")
    if leaf.issuer == leaf.subject:
        raise ConfigError(
            f"The signing certificate in {chain_path} is self-signed; C2PA needs one issued by a CA "
            "(put the signer first, then its CA, in the chain file)."
        )
    extensions = {ext.oid: ext.value for ext in leaf.extensions}
    basic = extensions.get(ExtensionOID.BASIC_CONSTRAINTS)
    if basic is not None and basic.ca:
        raise ConfigError(f"The signing certificate in {chain_path} is a CA certificate; C2PA needs an end-entity one.")
    usage = extensions.get(ExtensionOID.KEY_USAGE)
    if usage is None or not usage.digital_signature:
        raise ConfigError(f"The signing certificate in {chain_path} lacks the digitalSignature key usage.")
    ekus = extensions.get(ExtensionOID.EXTENDED_KEY_USAGE)
    if ekus is None or not any(oid.dotted_string in ALLOWED_EKUS for oid in ekus):
        allowed = ", ".join(sorted(set(ALLOWED_EKUS.values())))
        raise ConfigError(
            f"The signing certificate in {chain_path} needs an extended key usage C2PA accepts ({allowed})."
        )
