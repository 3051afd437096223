"""Shared fixtures. Registry fixtures run the real distribution registry
(tests/support/regharness.py); notification sinks are in tests/support/sinks.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import regharness
from regharness import MODE_BINARIES, Registry, require_binaries, start_registry
from sinks import SmtpSink, WebhookSink


def _session_registry(tmp_path_factory: pytest.TempPathFactory, mode: str) -> Iterator[Registry]:
    require_binaries(*MODE_BINARIES[mode])
    registry = start_registry(tmp_path_factory.mktemp(f"registry-{mode}"), mode)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture(scope="session")
def registry_anonymous(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry without auth, shared by the session: use `unique_repo()` names, and do
    not stop it (use `make_registry` for that)."""
    yield from _session_registry(tmp_path_factory, "anonymous")


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with bcrypt htpasswd auth (`.username`, `.password`), session-shared."""
    yield from _session_registry(tmp_path_factory, "basic")


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with token auth (`.token_server`, `.username`, `.password`), session-shared."""
    yield from _session_registry(tmp_path_factory, "token")


@pytest.fixture
def make_registry(tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    """Factory for a private registry (`make_registry("token", token_expires_in=2)`), closed at
    the end of the test: for tests that stop/start it or need special settings."""
    started: list[Registry] = []

    def make(mode: str = "anonymous", **kwargs: object) -> Registry:
        require_binaries(*MODE_BINARIES[mode])
        registry = start_registry(tmp_path / f"registry-{mode}-{len(started)}", mode,
                                  **kwargs)  # type: ignore[arg-type]
        started.append(registry)
        return registry

    yield make
    for registry in started:
        registry.close()


@pytest.fixture
def unique_repo() -> Callable[[str], str]:
    """`unique_repo("prefix")`: a repository name no other test uses."""
    return regharness.unique_repo


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    with WebhookSink() as sink:
        yield sink


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink
