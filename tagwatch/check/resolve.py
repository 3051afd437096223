"""Phase 2, resolve: each distinct tag once, however many watches and pins name it,
concurrently under the global and per-registry caps. Every tag's HEAD goes out at once on
this thread (`RegistryClient.resolve_many`); what a HEAD does not settle (a GET, a retry, a
token to fetch) is finished on worker threads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from tagwatch.check.recall import Known
from tagwatch.check.workers import Workers
from tagwatch.core.model import Failed, Missing, Observation, Resolved, TagKey, TagView, Target
from tagwatch.core.refs import ImageRef
from tagwatch.core.text import clean
from tagwatch.errors import NotFound, RegistryError, describe_failure, raised_at
from tagwatch.registry.client import RegistryClient

__all__ = ["observation_of", "observe", "resolve"]

log = logging.getLogger("tagwatch.cycle")  # the name log filters know; kept from 0.x


def resolve(
    targets: Sequence[Target],
    known: Known,
    client: RegistryClient,
    workers: Workers,
    abort: threading.Event | None = None,
) -> dict[TagKey, Observation]:
    """What the registry says about every tag the targets name. Once `abort` is set no new
    request starts: the tags not yet asked fail as abandoned."""
    refs: dict[TagKey, ImageRef] = {}
    for target in targets:
        if target.source_error is None:  # what it runs is unknown: nothing to compare with
            refs.setdefault(target.tag_key, target.ref.without_digest())
    keys = list(refs)
    # Tags recorded alike share one view (Store.tag_views), and so one `known`.
    last: dict[int, Resolved | None] = {}
    items = []
    for key in keys:
        view = known.tag(key)
        if id(view) not in last:
            last[id(view)] = _known(view)
        items.append((refs[key], last[id(view)]))
    try:
        heads = client.resolve_many(
            items, limit=workers.limit, caps=workers.caps, slots=workers.slots, abort=abort
        )
    except Exception as exc:  # noqa: BLE001 - a bug there: every tag the long way instead
        log.warning("resolving the cycle's HEADs together failed: %s", describe_failure(exc))
        log.debug("raised at %s", raised_at(exc))
        heads = [partial(client.resolve, ref, known) for ref, known in items]
    observations: dict[TagKey, Observation] = {}
    rest: list[int] = []
    for index, outcome in enumerate(heads):
        if isinstance(outcome, Resolved):
            observations[keys[index]] = outcome
        elif isinstance(outcome, RegistryError):
            observations[keys[index]] = _failure(outcome)
        else:
            rest.append(index)
    names = [refs[keys[i]].name + ":" + keys[i][2] for i in rest]
    jobs = [
        (refs[keys[i]].registry, partial(_finish, heads[i], names[n], abort))  # type: ignore[arg-type]
        for n, i in enumerate(rest)
    ]

    def failed(index: int, exc: BaseException) -> Observation:
        return _internal_error(names[index], exc)

    for index, observation in zip(rest, workers.run(jobs, failed), strict=True):
        observations[keys[index]] = observation
    return {key: observations[key] for key in keys}


def observation_of(target: Target, observations: Mapping[TagKey, Observation]) -> Observation:
    """What this check saw for `target`: its tag's observation, or a failure when the
    [[source]] naming it (a container engine, a cluster) could not be read."""
    if target.source_error is not None:
        return Failed(target.source_error, "source")
    return observations[target.tag_key]


def observe(
    client: RegistryClient,
    ref: ImageRef,
    known: Resolved | None = None,
    abort: threading.Event | None = None,
) -> Observation:
    """One tag: resolved, missing, or failed (never raises). A message is the registry's
    words in part: it is kept as one clean line (`core.text.clean`), as stored and shown."""
    return _finish(partial(client.resolve, ref, known), f"{ref.name}:{ref.tag}", abort)


def _finish(
    resolve: Callable[[], Resolved], name: str, abort: threading.Event | None = None
) -> Observation:
    """A tag's resolution finished on a worker thread (never raises)."""
    if abort is not None and abort.is_set():
        return Failed("abandoned: tagwatch is stopping", "abandoned")
    try:
        return resolve()
    except RegistryError as exc:
        return _failure(exc)
    except Exception as exc:  # noqa: BLE001 - one target's bug must not end the cycle
        return _internal_error(name, exc)


def _failure(exc: RegistryError) -> Observation:
    """A registry's error as the tag's observation, its message one clean line."""
    if isinstance(exc, NotFound):
        return Missing(clean(str(exc)))
    return Failed(clean(str(exc)), exc.reason)


def _internal_error(name: str, exc: BaseException) -> Failed:
    """A tag whose check raised what no registry error explains (a bug, or a document the
    client did not survive): that tag fails, with one log line saying what was raised."""
    what = describe_failure(exc)
    log.warning("%s: internal error while checking: %s", name, what)
    log.debug("%s: raised at %s", name, raised_at(exc))
    return Failed(clean(f"internal error: {what}"), "internal")


def _known(view: TagView | None) -> Resolved | None:
    """What the tag resolved to last time, so an unchanged index is not fetched again."""
    if view is None or view.digest is None or not view.present:
        return None
    return Resolved(view.digest, "", view.platforms)
