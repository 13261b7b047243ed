"""Throwaway certificates for TLS tests: a CA, a broker certificate for 127.0.0.1 it signed, a client
certificate it signed (mutual TLS), and a second CA nobody trusts. PEM files, made with
``cryptography``; nothing here is fit for production."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streams.kafka.broker import BrokerTLS

__all__ = ["Certificates", "make_certificates"]


@dataclass(frozen=True)
class Certificates:
    ca: Path            # the CA both sides trust
    broker: BrokerTLS   # the broker's key + chain, and the CA its clients must be signed by
    client_cert: Path   # a client certificate the CA signed …
    client_key: Path    # … and its key
    other_ca: Path      # a CA that signed nothing of the broker's


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: str, key, issuer: x509.Name, issuer_key, *, ca: bool = False, server: bool = False):
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, other_key, broker_key, client_key = _key(), _key(), _key(), _key()
    ca = _certificate("rendezvous test CA", ca_key, _name("rendezvous test CA"), ca_key, ca=True)
    other = _certificate("someone else's CA", other_key, _name("someone else's CA"), other_key, ca=True)
    broker = _certificate("127.0.0.1", broker_key, ca.subject, ca_key, server=True)
    client = _certificate("rendezvous worker", client_key, ca.subject, ca_key)
    files = {"ca.pem": _pem(ca), "other-ca.pem": _pem(other), "broker.pem": _pem_key(broker_key) + _pem(broker) + _pem(ca),
             "client.pem": _pem(client), "client.key": _pem_key(client_key)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return Certificates(folder / "ca.pem", BrokerTLS(folder / "broker.pem", folder / "ca.pem"),
                        folder / "client.pem", folder / "client.key", folder / "other-ca.pem")
