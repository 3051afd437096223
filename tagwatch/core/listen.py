"""`[metrics] listen` addresses: `HOST:PORT`, read once by the configuration (so a bad one is
a configuration error from `validate`) and used by the metrics server and `healthcheck`.

    127.0.0.1:9479     one address
    [::1]:9479         IPv6, in brackets
    :9479              every address (also 0.0.0.0:9479, [::]:9479)
    localhost:9479     a host name, resolved when the daemon binds
    127.0.0.1:0        any free port: the daemon logs the one it got
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["ANY_PORT", "Listen", "parse_listen"]

ANY_PORT = 0

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


@dataclass(frozen=True, slots=True)
class Listen:
    host: str  # "" for every address; an IPv6 address without brackets
    port: int  # 0: any free port

    @property
    def any_port(self) -> bool:
        return self.port == ANY_PORT

    def with_port(self, port: int) -> str:
        """`HOST:PORT` as written in the config, with `port` (the one actually bound)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{port}"


def parse_listen(text: str) -> Listen:
    """Parse `HOST:PORT`; ValueError with a one-line reason (that quotes `text`) otherwise."""
    example = "e.g. 127.0.0.1:9479, [::1]:9479, :9479, or port 0 for any free port"
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        raise ValueError(f"{text!r} is not HOST:PORT ({example})")
    if not port.isascii() or not port.isdigit():
        raise ValueError(f"{text!r}: port {port!r} is not a number ({example})")
    number = int(port)
    if number > 65535:
        raise ValueError(
            f"{text!r}: port {number} is out of range (1-65535, or 0 for any free port)"
        )
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        try:
            if ipaddress.ip_address(inner).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError(f"{text!r}: {host} is not an IPv6 address") from None
        return Listen(inner, number)
    if ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:{number}")
    dotted_numbers = bool(host) and all(part.isdigit() for part in host.split("."))
    if dotted_numbers:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host} is not an IPv4 address") from None
    elif host and not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name or IP address ({example})")
    return Listen(host, number)
