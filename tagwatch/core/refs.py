"""Image references in the distribution grammar, and platforms. Pure: text in, values out.

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := host [ ":" port ]          (a DNS name, an IPv4 or a bracketed IPv6 address)
    path-comp. := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := "sha256:" 64 lower-case hex | "sha512:" 128 lower-case hex

As in Docker, the first component is a registry host only when it contains a `.` or a `:`,
is `localhost`, or has upper case; otherwise the reference is on Docker Hub, where
single-component names live under `library/`. Docker Hub answers to several names
(`docker.io`, `index.docker.io`, `registry-1.docker.io`, `registry.hub.docker.com`); all are
canonicalised to `docker.io`, and its API is served from `registry-1.docker.io`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, replace

from tagwatch.errors import ReferenceError_

__all__ = [
    "DOCKER_HUB",
    "ImageRef",
    "is_loopback",
    "is_metadata_host",
    "parse_digest",
    "parse_platform",
    "parse_ref",
    "platform_key",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
MAX_NAME = 255

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::([0-9]+))?\Z"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST_HEX = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed reference. `registry` is canonical (`docker.io` for every Hub alias)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The canonical repository: `docker.io/library/python`."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """Where the registry API is served (`registry-1.docker.io` for Docker Hub)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def with_tag(self, tag: str) -> ImageRef:
        return replace(self, tag=tag)

    def without_digest(self) -> ImageRef:
        return self if self.digest is None else replace(self, digest=None)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_digest(text: str) -> str:
    """Validate `sha256:<64 hex>` (or sha512); returns it unchanged, raises ReferenceError_."""
    algorithm, sep, hex_ = text.partition(":")
    if not sep:
        raise ReferenceError_(f"bad digest {text!r}: expected sha256:<64 hex digits>")
    want = _DIGEST_HEX.get(algorithm)
    if want is None:
        raise ReferenceError_(
            f"bad digest {text!r}: unsupported algorithm {algorithm!r} (sha256 or sha512)"
        )
    if len(hex_) != want or any(c not in "0123456789abcdef" for c in hex_):
        raise ReferenceError_(
            f"bad digest {text!r}: {algorithm} needs {want} lower-case hex digits"
        )
    return text


def parse_ref(text: str) -> ImageRef:
    """Parse a reference; raises ReferenceError_ whose message quotes the reference.

    A reference with neither tag nor digest gets the tag `latest`; one with only a digest
    keeps `tag=None`."""
    if not isinstance(text, str) or not text.strip():
        raise ReferenceError_("empty image reference")
    original = text
    if text != text.strip():
        raise ReferenceError_(f"bad image reference {original!r}: surrounding white space")

    def fail(why: str) -> ReferenceError_:
        return ReferenceError_(f"bad image reference {original!r}: {why}")

    digest: str | None = None
    if "@" in text:
        text, _, digest_text = text.partition("@")
        try:
            digest = parse_digest(digest_text)
        except ReferenceError_ as exc:
            raise fail(str(exc)) from None

    # The tag follows the last ':' after the last '/' (a ':' before it is a port).
    tag: str | None = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
        if not tag:
            raise fail("empty tag after ':'")
        if not _TAG.match(tag):
            raise fail(
                f"bad tag {tag!r}: letters, digits, '_', '.' and '-', at most 128, "
                "not starting with '.' or '-'"
            )

    if not text:
        raise fail("no repository name")
    try:
        registry, path = _name(text)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if tag is None and digest is None:
        tag = "latest"
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest)


@functools.lru_cache(maxsize=4096)
def _name(text: str) -> tuple[str, str]:
    """The canonical (registry, repository) of a reference's name part; ValueError saying
    what is wrong. Cached: a configuration names the same repositories over and over (a
    watch per tag), and this is most of what parsing a reference costs."""
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        port = _HOST.match(first)
        if not port:
            raise ValueError(f"bad registry host {first!r}")
        if port.group(1) is not None and not 0 < int(port.group(1)) < 65536:
            raise ValueError(f"bad port in {first!r}")
        registry = first.lower()
        path = rest
    else:
        registry = DOCKER_HUB
        path = text
    if registry in HUB_ALIASES:
        registry = DOCKER_HUB

    components = path.split("/")
    for component in components:
        if not component:
            raise ValueError("empty path component")
        if not _PATH_COMPONENT.match(component):
            if component.lower() != component:
                raise ValueError(f"repository names must be lower case ({component!r})")
            raise ValueError(
                f"bad path component {component!r}: lower-case letters and digits, "
                "separated by '.', '_', '__' or '-'"
            )
    if registry == DOCKER_HUB and len(components) == 1:
        path = f"library/{path}"
    if len(f"{registry}/{path}") > MAX_NAME:
        raise ValueError(f"name longer than {MAX_NAME} characters")
    return registry, path


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name.lower() == "localhost" or name.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# Cloud instance metadata services (they hand out the machine's credentials) and the
# link-local ranges they live in: no credential, token request or redirect goes there.
_METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_METADATA_ADDRESSES = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: AWS, GCP, Azure, OpenStack …
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
)


def is_metadata_host(host: str) -> bool:
    """True for a link-local address or a cloud metadata service's name or address (a host as
    in a URL: `[fe80::1]`, `169.254.169.254:80`, `metadata.google.internal.`)."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".")
    if name in _METADATA_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _METADATA_ADDRESSES)


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm"}
_DEFAULT_VARIANT = {"arm": "v7"}
_DROP_VARIANT = {("arm64", "v8")}
_PLATFORM_WORD = re.compile(r"[a-z0-9][a-z0-9._-]*\Z")


def platform_key(os_: str, arch: str, variant: str | None = None) -> str:
    """Normalised `os/arch[/variant]`, as containerd normalises: arm64/v8 is arm64, arm is
    arm/v7, x86_64 is amd64."""
    os_ = os_.lower()
    arch = _ARCH_ALIASES.get(arch.lower(), arch.lower())
    variant = variant.lower() if variant else None
    if variant is None:
        variant = _DEFAULT_VARIANT.get(arch)
    if (arch, variant) in _DROP_VARIANT:
        variant = None
    return f"{os_}/{arch}/{variant}" if variant else f"{os_}/{arch}"


def parse_platform(text: str) -> str:
    """`linux/arm64/v8` -> `linux/arm64`; ValueError naming the text for anything else."""
    parts = text.strip().lower().split("/")
    if not 2 <= len(parts) <= 3 or not all(_PLATFORM_WORD.match(p) for p in parts):
        raise ValueError(
            f"bad platform {text!r}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7"
        )
    return platform_key(parts[0], parts[1], parts[2] if len(parts) == 3 else None)
