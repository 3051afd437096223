"""A throwaway certificate authority for tests: a server certificate for 127.0.0.1 and client
certificates, as PEM files laid out the way Docker's CLI takes them (`ca.pem`, `cert.pem`,
`key.pem` in one folder), and a TLS forwarder that puts a unix-socket service (the Podman
engine) behind TLS with client-certificate authentication on a loopback TCP port."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA", "TLSForwarder"]


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class CA:
    def __init__(self, name: str = "tagwatch test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, *, server: bool) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM): a server's for 127.0.0.1, or a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)

    def docker_folder(self, folder: Path, name: str = "tagwatch") -> Path:
        """ca.pem, cert.pem, key.pem (a client certificate), as `docker --tlsverify` and
        DOCKER_CERT_PATH expect them."""
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = self.issue(name, server=False)
        (folder / "ca.pem").write_bytes(self.pem)
        (folder / "cert.pem").write_bytes(cert)
        (folder / "key.pem").write_bytes(key)
        (folder / "key.pem").chmod(0o600)
        return folder

    def server_context(self, folder: Path, *, require_client: bool = True) -> ssl.SSLContext:
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = self.issue("127.0.0.1", server=True)
        (folder / "server.pem").write_bytes(cert)
        (folder / "server-key.pem").write_bytes(key)
        (folder / "client-ca.pem").write_bytes(self.pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "server.pem", folder / "server-key.pem")
        if require_client:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(folder / "client-ca.pem")
        return context


class TLSForwarder:
    """127.0.0.1:PORT with TLS (client certificate required) → a unix socket."""

    def __init__(self, context: ssl.SSLContext, target: Path) -> None:
        self.context, self.target = context, target
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.refused = 0
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.refused += 1
            conn.close()
            return
        upstream = socket.socket(socket.AF_UNIX)
        try:
            upstream.connect(str(self.target))
        except OSError:
            upstream.close()
            tls.close()
            return

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(upstream, tls), daemon=True)
        back.start()
        pump(tls, upstream)
        back.join(timeout=5)
        upstream.close()
        tls.close()

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
