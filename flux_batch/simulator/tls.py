"""HTTPS for the simulator: a throwaway certificate authority and a server certificate, made by trustme.

Served over plain HTTP, output URLs are ``http:`` and the official clients hand them back as strings
instead of ``FileOutput`` objects; over HTTPS they behave as against Replicate. The authority's PEM is what
a client must trust (``SSL_CERT_FILE`` for Python's httpx and the ``replicate`` package,
``NODE_EXTRA_CA_CERTS`` for Node).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

#: Names every simulator certificate covers, whatever address it listens on.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """``ca_pem``: the authority's certificate (PEM) to trust; ``server_pem``: the server's private key and
    certificate chain, in one file, for uvicorn."""

    ca_pem: bytes
    server_pem: Path

    def write_ca(self, path: str | Path) -> Path:
        """Write the authority's PEM to ``path`` (replacing it) and return the path."""
        target = Path(path)
        target.write_bytes(self.ca_pem)
        return target


def certificate_names(host: str) -> tuple[str, ...]:
    """The loopback names, plus ``host`` unless it is a wildcard address (``0.0.0.0``, ``::``)."""
    names = list(LOOPBACK_NAMES)
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if host and not wildcard and host not in names:
        names.append(host)
    return tuple(names)


def make_tls(directory: str | Path, host: str = "127.0.0.1") -> TlsFiles:
    """A new authority and a certificate for :func:`certificate_names` (``host``), the key written into
    ``directory`` (readable by its owner only)."""
    import trustme  # only --tls needs it

    authority = trustme.CA(organization_name="flux-batch simulator")
    server = authority.issue_cert(*certificate_names(host))
    path = Path(directory) / "simulator-server.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(server.private_key_and_cert_chain_pem.bytes())
    return TlsFiles(authority.cert_pem.bytes(), path)
