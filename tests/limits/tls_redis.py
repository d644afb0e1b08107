"""A real redis-server speaking only TLS, with certificates made at test time (shared by the TLS tests).

The server's certificate names ``localhost`` and nothing else, so connecting to ``127.0.0.1`` is a host
name mismatch; a client certificate is made too, for servers started with ``tls-auth-clients yes``.
"""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import free_port, stop_process


def self_signed(tmp: Path, name: str, dns: str | None) -> tuple[Path, Path]:
    """A self-signed certificate (a CA of itself) for ``dns`` (no name: a client's), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if dns is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class TlsRedis:
    proc: subprocess.Popen[bytes]
    port: int
    ca: Path
    """The server certificate: the CA a client must trust."""
    client_cert: Path
    client_key: Path
    stranger: Path
    """A CA that signed nothing here (trusting only it must fail)."""

    def url(self, host: str = "localhost", **query: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"rediss://{host}:{self.port}/0" + (f"?{q}" if q else "")


def _ready(port: int, ca: Path, cert: Path | None, key: Path | None) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def tls_redis(tmp: Path, *, client_certs: bool = False) -> Iterator[TlsRedis]:
    """redis-server with only a TLS port; ``client_certs``: it refuses clients without a certificate."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run the README test command (it installs it with apt-get)")
    ca, ca_key = self_signed(tmp, "server", "localhost")
    client_cert, client_key = self_signed(tmp, "client", None)
    stranger, _ = self_signed(tmp, "stranger", "localhost")
    trusted = tmp / "clients.pem"  # the server's CA file: its own certificate and the client's
    trusted.write_bytes(ca.read_bytes() + client_cert.read_bytes())
    port = free_port()
    proc = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                             "--tls-cert-file", str(ca), "--tls-key-file", str(ca_key),
                             "--tls-ca-cert-file", str(trusted),
                             "--tls-auth-clients", "yes" if client_certs else "no",
                             "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not _ready(port, ca, client_cert if client_certs else None, client_key if client_certs else None):
            if time.time() > deadline or proc.poll() is not None:
                pytest.fail(f"redis-server with TLS did not start on port {port} (rc={proc.poll()})")
            time.sleep(0.05)
        yield TlsRedis(proc, port, ca, client_cert, client_key, stranger)
    finally:
        stop_process(proc)
