"""Who may talk to the grading cluster: scheduler addresses, TLS settings, certificates.

- :func:`check_address`: a scheduler address is ``tls://HOST:PORT`` or ``tcp://HOST:PORT``; plain
  ``tcp://`` is allowed on a loopback address only, unless ``insecure`` (``--insecure``): anyone
  who can reach an open scheduler can run code on every worker, and read the submissions.
- :func:`security`: ``distributed.security.Security(require_encryption=True, ...)`` from a CA
  certificate, a certificate and its key (``--tls-ca/--tls-cert/--tls-key``, or ``--tls-dir DIR``
  holding what :func:`make_certs` wrote). Each side proves itself with a certificate signed by
  the course's CA, and accepts only peers that do the same (Dask's TLS: ``CERT_REQUIRED`` both ways).
- :func:`make_certs` (``cnn-course cluster certs --out DIR``): a CA and one certificate each for
  the scheduler, the workers and the client, with the ``cryptography`` package. The CA's key is
  needed only to make more certificates: keep it off the cluster.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..nbapi import CourseError

ROLES = ("scheduler", "worker", "client")
CA_FILE = "ca.pem"


def cert_files(directory: Path | str, role: str) -> tuple[Path, Path, Path]:
    """(CA certificate, certificate, key) of ``role`` in a folder written by :func:`make_certs`."""
    d = Path(directory)
    return d / CA_FILE, d / f"{role}.pem", d / f"{role}-key.pem"


@dataclass
class TLSFiles:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @classmethod
    def from_flags(cls, tls_dir=None, ca=None, cert=None, key=None, role: str = "client") -> "TLSFiles":
        if tls_dir:
            d_ca, d_cert, d_key = cert_files(tls_dir, role)
            ca, cert, key = ca or str(d_ca), cert or str(d_cert), key or str(d_key)
        return cls(ca, cert, key)

    @property
    def given(self) -> bool:
        return any((self.ca, self.cert, self.key))

    def check(self) -> "TLSFiles":
        missing = [flag for flag, v in (("--tls-ca", self.ca), ("--tls-cert", self.cert), ("--tls-key", self.key))
                   if not v]
        if missing:
            raise CourseError(f"a tls:// scheduler needs a CA certificate, a certificate and its key: give "
                              f"{', '.join(missing)} (or --tls-dir DIR made by `cnn-course cluster certs`)")
        for what, path in (("CA certificate", self.ca), ("certificate", self.cert), ("key", self.key)):
            if not Path(path).is_file():
                raise CourseError(f"no {what} file {path} (make them with `cnn-course cluster certs --out DIR`)")
        return self


def _host_port(address: str) -> tuple[str, str, int]:
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("tcp", "tls"):
        raise CourseError(f"scheduler address {address!r}: expected tls://HOST:PORT (or tcp://127.0.0.1:PORT "
                          f"on this machine)")
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise CourseError(f"scheduler address {address!r}: expected {scheme}://HOST:PORT")
    return scheme, host, int(port)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def check_address(address: str, insecure: bool = False) -> str:
    """The scheme of a scheduler address that may be used; CourseError otherwise."""
    scheme, host, _ = _host_port(address)
    if scheme == "tcp" and not insecure and not is_loopback(host):
        raise CourseError(f"refusing the unencrypted scheduler {address}: tcp:// is for a scheduler on this "
                          f"machine (127.0.0.1) only; use tls:// with certificates (`cnn-course cluster certs`), "
                          f"or --insecure on a network you trust entirely")
    return scheme


def security(files: TLSFiles, role: str = "client"):
    """A Dask ``Security`` that requires TLS, with the certificates of ``role``."""
    from distributed.security import Security

    files.check()
    kw = {"tls_ca_file": files.ca, f"tls_{role}_cert": files.cert, f"tls_{role}_key": files.key}
    return Security(require_encryption=True, **kw)


def dask_tls_args(files: TLSFiles) -> list[str]:
    """The ``--tls-*`` options of ``dask scheduler`` and ``dask worker``."""
    files.check()
    return ["--tls-ca-file", files.ca, "--tls-cert", files.cert, "--tls-key", files.key]


# -- certificates


def _name(common: str):
    from cryptography.x509.oid import NameOID
    from cryptography import x509

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cnn-course grading cluster"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key) -> None:
    from cryptography.hazmat.primitives import serialization

    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def make_certs(out: Path | str, hosts: list[str] | None = None, days: int = 365) -> dict[str, Path]:
    """A CA and a certificate (with its key) for each of the scheduler, the workers and the client.

    ``hosts`` go into the certificates' subject alternative names (with localhost and 127.0.0.1);
    Dask checks the chain to the CA, not host names. Keys are written 0600. Refuses a folder that
    already holds a CA, so that a cluster's certificates are never replaced by accident.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    out = Path(out)
    if (out / CA_FILE).exists():
        raise CourseError(f"{out / CA_FILE} exists: choose another --out folder (or remove the old certificates)")
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    until = now + _dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("cnn-course grading CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    written = {"ca": out / CA_FILE, "ca-key": out / "ca-key.pem"}
    written["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(written["ca-key"], ca_key)
    names: list = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    for h in hosts or []:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(f"cnn-course {role}")).issuer_name(ca_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(until)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                # every Dask process both listens and connects: server and client authentication
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        _, cert_path, key_path = cert_files(out, role)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        written[role], written[f"{role}-key"] = cert_path, key_path
    return written


def certs_howto(out: Path | str, host: str = "SCHEDULER_HOST", port: int = 8786) -> str:
    """The command lines that use the certificates in ``out``."""
    d = Path(out)
    return "\n".join([
        f"certificates in {d} (keys 0600; keep ca-key.pem off the cluster):",
        f"  scheduler machine: {d}/ca.pem, scheduler.pem, scheduler-key.pem",
        f"  every worker:      {d}/ca.pem, worker.pem, worker-key.pem",
        f"  the instructor:    {d}/ca.pem, client.pem, client-key.pem",
        "start the scheduler:",
        f"  cnn-course cluster scheduler --host 0.0.0.0 --port {port} --tls-dir {d}",
        "  (that is: DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION=True DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=2 "
        f"dask scheduler --protocol tls --port {port} --no-dashboard --tls-ca-file {d}/ca.pem "
        f"--tls-cert {d}/scheduler.pem --tls-key {d}/scheduler-key.pem)",
        "start the workers, on each worker machine (as root, for the sandbox):",
        f"  cnn-course worker tls://{host}:{port} --nworkers N --tls-dir {d}",
        f"  (that is: dask worker tls://{host}:{port} --nthreads 1 --nworkers N --preload "
        f"helpers.instructor.cluster.preload --tls-ca-file {d}/ca.pem --tls-cert {d}/worker.pem "
        f"--tls-key {d}/worker-key.pem)",
        "grade:",
        f"  cnn-course --db-url postgresql+psycopg://USER@DBHOST/DB autograde --all --scheduler tls://{host}:{port} "
        f"--tls-dir {d}",
    ])
