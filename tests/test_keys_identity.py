"""Signing identities: `guard keys init` makes what c2pa accepts; bad keys and certificates fail in one line."""

from __future__ import annotations

import datetime as dt
import json
import stat

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from guard.cli import cli
from guard.errors import ConfigError
from guard.provenance.credentials.keys import SigningIdentity, init_identity, keys_dir


@pytest.fixture()
def home(tmp_path, monkeypatch):
    for name in ("GUARD_SIGN_CERT", "GUARD_SIGN_KEY", "GUARD_SIGN_KEY_PASSWORD", "GUARD_TSA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_init_makes_a_ca_issued_es256_signer_with_c2pa_extensions(home):
    folder = init_identity(home)
    chain = x509.load_pem_x509_certificates((folder / "signer.pem").read_bytes())
    signer, ca = chain
    assert signer.issuer == ca.subject != signer.subject
    assert isinstance(signer.public_key(), ec.EllipticCurvePublicKey)
    assert signer.public_key().curve.name == "secp256r1"
    ext = {e.oid: e.value for e in signer.extensions}
    assert ext[ExtensionOID.BASIC_CONSTRAINTS].ca is False
    assert ext[ExtensionOID.KEY_USAGE].digital_signature
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in ext[ExtensionOID.EXTENDED_KEY_USAGE]
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert ext[ExtensionOID.AUTHORITY_KEY_IDENTIFIER].key_identifier == ca_ski
    assert ExtensionOID.SUBJECT_KEY_IDENTIFIER in ext
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    days = (signer.not_valid_after_utc - signer.not_valid_before_utc).days
    assert 700 < days < 800
    assert (folder / "ca.pem").read_bytes() == ca.public_bytes(serialization.Encoding.PEM)


def test_private_key_is_0600_and_never_printed(home):
    folder = init_identity(home)
    key_file = folder / "signer.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    identity = SigningIdentity.load(home)
    secret = key_file.read_text().splitlines()[1]
    assert secret not in repr(identity)
    assert secret not in json.dumps(identity.describe())
    assert "PRIVATE KEY" not in repr(identity)
    assert identity.alg == "es256"


def test_init_refuses_to_overwrite_without_force(home):
    init_identity(home)
    first = (keys_dir(home) / "signer.pem").read_bytes()
    with pytest.raises(ConfigError, match="--force"):
        init_identity(home)
    init_identity(home, force=True)
    assert (keys_dir(home) / "signer.pem").read_bytes() != first


def test_encrypted_key_needs_the_right_password(home):
    init_identity(home, password="correct horse")
    assert SigningIdentity.load(home, password="correct horse").alg == "es256"
    with pytest.raises(ConfigError, match="Wrong password"):
        SigningIdentity.load(home, password="battery staple")
    with pytest.raises(ConfigError, match="is encrypted"):
        SigningIdentity.load(home)


def test_missing_and_unreadable_keys_are_one_clear_sentence(home, tmp_path):
    with pytest.raises(ConfigError, match="guard keys init"):
        SigningIdentity.load(home)
    folder = init_identity(home)
    (folder / "signer.key").write_text("not a key\n")
    with pytest.raises(ConfigError, match="not a readable PEM private key"):
        SigningIdentity.load(home)
    with pytest.raises(ConfigError, match="does not exist"):
        SigningIdentity.load(chain=folder / "signer.pem", key=tmp_path / "absent.key")
    with pytest.raises(ConfigError, match="both"):
        SigningIdentity.load(chain=folder / "signer.pem")


def test_expired_certificate_is_refused(home):
    init_identity(home, days=1, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    with pytest.raises(ConfigError, match="expired"):
        SigningIdentity.load(home)


def _self_signed(tmp_path, *, ca: bool = False, eku: bool = True):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    chain, key_file = tmp_path / "self.pem", tmp_path / "self.key"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return chain, key_file


def test_self_signed_end_entity_is_refused_as_c2pa_would(tmp_path):
    chain, key = _self_signed(tmp_path)
    with pytest.raises(ConfigError, match="self-signed"):
        SigningIdentity.load(chain=chain, key=key)


def test_key_that_does_not_match_the_certificate_is_refused(home, tmp_path):
    folder = init_identity(home)
    _, other_key = _self_signed(tmp_path)
    with pytest.raises(ConfigError, match="does not belong"):
        SigningIdentity.load(chain=folder / "signer.pem", key=other_key)


def test_user_chain_and_key_from_environment(home, tmp_path, monkeypatch):
    own = init_identity(tmp_path / "elsewhere")
    monkeypatch.setenv("GUARD_SIGN_CERT", str(own / "signer.pem"))
    monkeypatch.setenv("GUARD_SIGN_KEY", str(own / "signer.key"))
    monkeypatch.setenv("GUARD_TSA_URL", "http://timestamp.example/tsa")
    identity = SigningIdentity.load()
    assert identity.chain_path == own / "signer.pem"
    assert identity.tsa_url == "http://timestamp.example/tsa"


def test_cli_init_then_show(home):
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "init", "--org", "Newsroom", "--json"])
    assert made.exit_code == 0, made.output
    summary = json.loads(made.output)
    assert "O=Newsroom" in summary["subject"]
    assert summary["trust_anchor"].endswith("ca.pem")
    shown = runner.invoke(cli, ["keys", "show"])
    assert shown.exit_code == 0
    assert "Newsroom" in shown.output
    assert "PRIVATE" not in shown.output + made.output


def test_cli_errors_exit_2_with_one_line(home, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["keys", "show"])
    assert missing.exit_code == 2
    assert len(missing.stderr.strip().splitlines()) == 1
    init_identity(home, password="secret")
    wrong = runner.invoke(cli, ["keys", "show"], env={"GUARD_SIGN_KEY_PASSWORD": "nope"})
    assert wrong.exit_code == 2
    assert wrong.stderr.strip().splitlines() == [wrong.stderr.strip()]
    assert "Wrong password" in wrong.stderr
    assert "Traceback" not in wrong.output


def test_cli_init_encrypts_the_key_with_the_password_from_the_environment(home):
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "init", "--encrypt"], env={"GUARD_SIGN_KEY_PASSWORD": "s3cret"})
    assert made.exit_code == 0, made.output
    assert (keys_dir(home) / "signer.key").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert "s3cret" not in made.output
    assert runner.invoke(cli, ["keys", "show"], env={"GUARD_SIGN_KEY_PASSWORD": "s3cret"}).exit_code == 0
    again = runner.invoke(cli, ["keys", "init"])
    assert again.exit_code == 2 and "--force" in again.stderr


def test_home_that_is_a_file_is_one_line_and_exit_2(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_bytes(b"not a folder")
    monkeypatch.setenv("GUARD_HOME", str(home))
    result = CliRunner().invoke(cli, ["keys", "init"])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: Cannot create the keys folder {home / 'keys'}")
