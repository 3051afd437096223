"""What runs: the answers of a container engine (Docker Engine API) or of the Kubernetes API,
turned into `Running` items — one per container, naming the image reference it was started
from and the registry digest it runs, or why that digest is not known. Pure: parsed JSON
in, values out; every field of a peer's answer is checked for its type before use, since an
engine or an API server may answer anything.

A running container is a pin nobody wrote down: its reference's tag plus the digest it runs.
That digest is only ever taken from what the engine recorded when it pulled the image (its
`RepoDigests` for the container's repository, Kubernetes' `imageID`), never guessed: an image
built locally or loaded from a tar has none, and is reported as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tagwatch.core.refs import ImageRef, parse_digest, parse_ref
from tagwatch.errors import ReferenceError_

__all__ = [
    "LOCAL_NAMESPACE",
    "NO_REPO_DIGEST",
    "Running",
    "from_engine",
    "from_pods",
    "looks_like_image_id",
]

NO_REPO_DIGEST = (
    "its image has no registry digest for {name} (built locally, or loaded from a tar): "
    "what it runs cannot be compared with the tag"
)
LOCAL_NAMESPACE = "localhost"  # Podman's name for images that come from no registry
_IMAGE_ID = re.compile(r"(?:sha256:)?[0-9a-f]{12,64}\Z")


@dataclass(frozen=True, slots=True)
class Running:
    """One container of an engine or a pod. `digest` is set when it is a pin; otherwise
    `problem` says why it cannot be judged."""

    place: str  # "container web-1 on unix:///var/run/docker.sock", "pod ns/p container c"
    image: str  # the reference as the engine or the pod spec gives it
    digest: str | None = None
    problem: str | None = None

    def ref(self) -> ImageRef | None:
        """The pin's reference (tag and digest), when this container is one."""
        if self.digest is None or self.problem is not None:
            return None
        try:
            ref = parse_ref(self.image)
        except ReferenceError_:
            return None
        if ref.tag is None:
            return None
        return ImageRef(ref.registry, ref.repository, ref.tag, self.digest)

    def as_dict(self) -> dict[str, str | None]:
        return {
            "place": self.place,
            "image": self.image,
            "digest": self.digest,
            "problem": self.problem,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Running | None:
        """From `as_dict` (a stored reading); None for anything malformed."""
        place, image = data.get("place"), data.get("image")
        digest, problem = data.get("digest"), data.get("problem")
        if not isinstance(place, str) or not isinstance(image, str):
            return None
        if not isinstance(digest, str | None) or not isinstance(problem, str | None):
            return None
        return cls(place, image, digest, problem)


def looks_like_image_id(text: str) -> bool:
    """`sha256:4c28…` or a bare hex prefix: an image ID, not a reference."""
    return _IMAGE_ID.match(text) is not None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _digest_of(text: str) -> str | None:
    try:
        return parse_digest(text)
    except ReferenceError_:
        return None


def _pinnable(image: str, place: str) -> tuple[ImageRef | None, Running | None]:
    """Parse a container's reference: (ref with a tag, None), or (None, a Running that says
    why it is not a pin)."""
    if not image:
        return None, Running(place, image, problem="no image reference")
    if looks_like_image_id(image):
        return None, Running(
            place, image, problem="started from an image ID, not a reference: no tag to follow"
        )
    try:
        ref = parse_ref(image)
    except ReferenceError_ as exc:
        return None, Running(place, image, problem=f"not an image reference: {exc}")
    if ref.tag is None:
        if ref.digest is not None:
            return None, Running(
                place, image, problem="pinned by digest alone: there is no tag to follow"
            )
        ref = ref.with_tag("latest")
    return ref, None


def _repo_digests(values: Any, ref: ImageRef) -> list[str]:
    """The digests `name@sha256:…` entries record for `ref`'s repository, in order."""
    out: list[str] = []
    if not isinstance(values, list):
        return out
    for entry in values:
        name, sep, digest_text = _text(entry).partition("@")
        if not sep:
            continue
        try:
            named = parse_ref(name)
        except ReferenceError_:
            continue
        digest = _digest_of(digest_text)
        same = (named.registry, named.repository) == (ref.registry, ref.repository)
        if same and digest and digest not in out:
            out.append(digest)
    return out


# --- Docker Engine API (Docker, Podman's compatible service) --------------------------------


def _container_name(container: Mapping[str, Any]) -> str:
    names = container.get("Names")
    if isinstance(names, list):
        for name in names:
            if isinstance(name, str) and name.strip("/"):
                return name.strip("/")
    return _text(container.get("Id"))[:12] or "?"


def from_engine(
    engine: str,
    containers: Sequence[Any],
    images: Sequence[Any],
    configured: Mapping[str, str] | None = None,
) -> list[Running]:
    """The containers of one engine, from `GET /containers/json` and `GET /images/json`.

    `configured` maps a container id to its `Config.Image` (from `GET /containers/{id}/json`),
    fetched for the containers whose listed `Image` is an image ID: Docker lists the ID
    instead of the reference once the reference's tag points at another local image (after
    a newer pull), which is exactly when a container falls behind.

    The digest: the container's own `ImageManifestDescriptor` (API 1.48+, the platform image
    it runs) when the image has a repo digest in that repository; else the image's
    `RepoDigests` for the repository. Podman records both an index's and its platform image's
    digest when it pulled an index by tag, and lists the pulled one as `Digest`: the other
    one, the image the container runs, is taken."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for image in images:
        if isinstance(image, dict) and isinstance(image.get("Id"), str):
            by_id[image["Id"]] = image
    out: list[Running] = []
    for container in containers:
        if not isinstance(container, dict):
            continue
        name = _container_name(container)
        place = f"container {name} on {engine}"
        image_text = _text(container.get("Image"))
        cid = _text(container.get("Id"))
        if looks_like_image_id(image_text) and configured and configured.get(cid):
            image_text = configured[cid]
        ref, problem = _pinnable(image_text, place)
        if problem is not None:
            out.append(problem)
            continue
        assert ref is not None
        image = by_id.get(_text(container.get("ImageID")), {})
        # Podman records a digest for every image, also one it built or loaded, under the
        # name it was given: `localhost/…` for those it names itself. Not a registry's.
        local = ref.registry == LOCAL_NAMESPACE
        found = [] if local else _repo_digests(image.get("RepoDigests"), ref)
        digest: str | None = None
        if ref.digest is not None and not local:
            digest = ref.digest  # created as name:tag@digest: that is what was pulled
        elif found:
            descriptor = container.get("ImageManifestDescriptor")
            own = (
                _digest_of(_text(descriptor.get("digest")))
                if isinstance(descriptor, dict)
                else None
            )
            pulled = _digest_of(_text(image.get("Digest")))
            if own is not None:
                digest = own
            elif len(found) > 1 and pulled in found:
                digest = sorted(d for d in found if d != pulled)[0]
            else:
                digest = sorted(found)[0] if len(found) > 1 else found[0]
        if digest is None:
            out.append(Running(place, image_text, problem=NO_REPO_DIGEST.format(name=ref.name)))
            continue
        out.append(Running(place, str(ref.without_digest()), digest))
    return out


# --- Kubernetes ------------------------------------------------------------------------------

_STATUS_LISTS = (
    ("containers", "containerStatuses"),
    ("initContainers", "initContainerStatuses"),
    ("ephemeralContainers", "ephemeralContainerStatuses"),
)


def _image_id(text: str) -> tuple[ImageRef | None, str | None]:
    """Kubernetes' `imageID`: `docker-pullable://repo@sha256:…` (dockershim, cri-dockerd),
    `repo@sha256:…` (containerd, CRI-O). `docker://sha256:…` or a bare `sha256:…` is an
    image ID (the config's digest), not a registry digest: (None, None)."""
    for prefix in ("docker-pullable://", "docker://", "containerd://", "cri-o://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    name, sep, digest_text = text.partition("@")
    if not sep:
        return None, None
    try:
        return parse_ref(name), _digest_of(digest_text)
    except ReferenceError_:
        return None, None


def from_pods(pods: Iterable[Any], stopped: bool = False) -> list[Running]:
    """The containers of Pods (`items` of `GET /api/v1/pods`), init and ephemeral ones
    included. Only running containers unless `stopped`; a container whose image is still
    being pulled has no `imageID` yet and is reported as such."""
    out: list[Running] = []
    for pod in pods:
        if not isinstance(pod, dict):
            continue
        meta, spec, status = (_dict(pod.get(k)) for k in ("metadata", "spec", "status"))
        pod_name = f"{_text(meta.get('namespace')) or 'default'}/{_text(meta.get('name')) or '?'}"
        for spec_key, status_key in _STATUS_LISTS:
            declared: dict[str, str] = {}
            items = spec.get(spec_key)
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    declared[item["name"]] = _text(item.get("image"))
            statuses = status.get(status_key)
            for entry in statuses if isinstance(statuses, list) else []:
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                    continue
                name = entry["name"]
                image = declared.get(name) or _text(entry.get("image"))
                found = _pod_container(f"pod {pod_name} container {name}", image, entry, stopped)
                if found is not None:
                    out.append(found)
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pod_container(place: str, image: str, entry: dict[str, Any], stopped: bool) -> Running | None:
    """One container status of a Pod as what it runs (None: it ran and stopped, and
    `stopped` is off)."""
    state = _dict(entry.get("state"))
    running = isinstance(state.get("running"), dict)
    image_id = _text(entry.get("imageID"))
    if not running and not stopped and image_id:
        return None  # ran and stopped (a finished init container, a crash loop)
    ref, problem = _pinnable(image, place)
    if problem is not None:
        return problem
    assert ref is not None
    if not image_id:
        reason = _text(_dict(state.get("waiting")).get("reason")) or "waiting"
        return Running(place, image, problem=f"image not pulled yet ({reason})")
    pulled, digest = _image_id(image_id)
    if ref.digest is not None and digest is None:
        digest, pulled = ref.digest, ref
    if pulled is None or digest is None:
        return Running(place, image, problem=NO_REPO_DIGEST.format(name=ref.name))
    if (pulled.registry, pulled.repository) != (ref.registry, ref.repository):
        return Running(
            place,
            image,
            problem=f"its imageID names another repository ({pulled.name}): "
            "not compared with the tag",
        )
    return Running(place, str(ref.without_digest()), digest)
