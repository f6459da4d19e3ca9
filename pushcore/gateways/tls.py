"""A private CA and a server certificate for the simulators (``cryptography``, P-256).

:func:`ensure_certificates` writes ``ca.pem``, ``server.pem`` (leaf + CA chain) and
``server-key.pem`` (PKCS#8, as granian requires) into a directory, or reuses them when they
are still valid for the requested host names: clients that trusted the CA once keep working
across simulator restarts.  Concurrent callers on the same directory are serialised by a
lock file (bounded wait), so a CA is never paired with another run's leaf.

``python -m pushcore.gateways.tls --ca-dir DIR [--host NAME ...]`` prints the CA path.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
VALID_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=7)
LOCK_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def ensure_certificates(ca_dir: Path | str, hosts: Sequence[str] = ()) -> TlsFiles:
    """Certificates in ``ca_dir`` valid for ``localhost``, the loopback addresses and
    ``hosts``; created (or renewed) when needed."""
    directory = Path(ca_dir)
    directory.mkdir(parents=True, exist_ok=True)
    names = tuple(dict.fromkeys((*DEFAULT_HOSTS, *hosts)))
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    with _locked(directory / ".lock"):
        if not _usable(files, names):
            _generate(files, names)
    return files


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} stayed locked for {LOCK_TIMEOUT} s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # also releases the lock


def _usable(files: TlsFiles, names: Sequence[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
        ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
        serialization.load_pem_private_key(files.key_file.read_bytes(), None)
    except (OSError, ValueError):
        return False
    now = dt.datetime.now(dt.UTC)
    if min(cert.not_valid_after_utc, ca.not_valid_after_utc) - now < RENEW_BEFORE:
        return False
    if cert.issuer != ca.subject:
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    present = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    present |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return all(str(_general_name(n).value) in present for n in names)


def _general_name(name: str) -> x509.DNSName | x509.IPAddress:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _generate(files: TlsFiles, names: Sequence[str]) -> None:
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushcore simulators CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Each file is replaced atomically; the lock keeps readers in this module consistent.
    _write(files.key_file, key_pem, 0o600)
    _write(files.cert_file, leaf.public_bytes(pem) + ca.public_bytes(pem), 0o644)
    _write(files.ca_file, ca.public_bytes(pem), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pushcore.gateways.tls")
    parser.add_argument("--ca-dir", type=Path, required=True)
    parser.add_argument("--host", action="append", default=[], help="extra host name or IP")
    args = parser.parse_args(argv)
    print(ensure_certificates(args.ca_dir, args.host).ca_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
