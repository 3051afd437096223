"""Registry credentials from Docker's client configuration (`~/.docker/config.json`).

Lookup order for a registry, as the Docker CLI does it:

1. `credHelpers[<registry>]`: run `docker-credential-<helper> get` with the server URL on
   stdin; it prints `{"ServerURL", "Username", "Secret"}`.
2. `credsStore`: the same protocol with the default helper.
3. `auths[<registry>]`: `auth` (base64 `user:password`), or `username`/`password`,
   `identitytoken` (an OAuth2 refresh token) or `registrytoken` (a bearer token to send as is).

Docker Hub is stored under `https://index.docker.io/v1/`. A helper answering with the
username `<token>` hands out an identity token, not a password.

Secrets found here are kept in `Credentials`, whose repr never shows them.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagwatch.core.text import clean

__all__ = ["Credentials", "docker_config_path", "docker_credentials"]

log = logging.getLogger(__name__)

HUB_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 10.0

Runner = Callable[[list[str], str], str]


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(default="", repr=False)
    identity_token: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)
    source: str = "config"


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"


def _keys(registry: str) -> list[str]:
    """The keys a registry may be stored under in config.json."""
    if registry == "docker.io":
        return [
            HUB_KEY,
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
            "https://registry-1.docker.io",
            "https://index.docker.io",
        ]
    return [
        registry,
        f"https://{registry}",
        f"http://{registry}",
        f"https://{registry}/v1/",
        f"https://{registry}/v2/",
    ]


def _run_helper(argv: list[str], stdin: str) -> str:
    import subprocess  # a credential helper is configured: rare, and never before

    done = subprocess.run(  # noqa: S603 - argv built from a helper name in the user's config
        argv, input=stdin, capture_output=True, text=True, timeout=HELPER_TIMEOUT, check=False
    )
    if done.returncode != 0:
        # Helpers print "credentials not found in native keychain" for unknown servers.
        raise LookupError(done.stdout.strip() or done.stderr.strip() or f"exit {done.returncode}")
    return done.stdout


def _from_helper(helper: str, registry: str, runner: Runner) -> Credentials | None:
    import subprocess

    server = HUB_KEY if registry == "docker.io" else registry
    argv = [f"docker-credential-{helper}", "get"]
    try:
        out = runner(argv, server)
        answer = json.loads(out)
    except FileNotFoundError:
        log.warning(
            "docker credential helper %s is not installed; no credentials for %s", argv[0], registry
        )
        return None
    except (LookupError, subprocess.TimeoutExpired, ValueError, OSError) as exc:
        # The helper's own message never contains the secret (it failed to find one).
        log.info(
            "docker credential helper %s has no credentials for %s (%s)",
            helper,
            registry,
            clean(exc, 200) or type(exc).__name__,
        )
        return None
    if not isinstance(answer, dict):
        return None
    username = str(answer.get("Username") or "")
    secret = str(answer.get("Secret") or "")
    if not secret:
        return None
    source = f"docker-credential-{helper}"
    if username == "<token>":
        return Credentials("<token>", identity_token=secret, source=source)
    return Credentials(username, secret, source=source)


def _from_auths(entry: Any, key: str, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    source = f"{path} auths[{key}]"
    username = entry.get("username")
    password = entry.get("password")
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            log.warning("%s: 'auth' is not base64 of user:password; ignored", source)
            decoded = ""
        if ":" in decoded:
            username, password = decoded.split(":", 1)
    identity = entry.get("identitytoken")
    registry_token = entry.get("registrytoken")
    if isinstance(identity, str) and identity:
        return Credentials(str(username or "<token>"), identity_token=identity, source=source)
    if isinstance(registry_token, str) and registry_token:
        return Credentials(str(username or ""), registry_token=registry_token, source=source)
    if isinstance(username, str) and username and isinstance(password, str):
        return Credentials(username, password, source=source)
    return None


def docker_credentials(
    registry: str,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    runner: Runner = _run_helper,
) -> Credentials | None:
    """Credentials for `registry` (canonical host, `docker.io` for Hub) or None.

    Never raises for a missing or unreadable file: tagwatch then goes anonymous, and says
    why in the log (without any secret).
    """
    path = config_path or docker_config_path(env)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning(
            "cannot read docker config %s: %s; using no credentials from it",
            path,
            type(exc).__name__,
        )
        return None
    if not isinstance(data, dict):
        return None
    helpers = data.get("credHelpers")
    if isinstance(helpers, dict):
        for key in _keys(registry):
            helper = helpers.get(key)
            if isinstance(helper, str) and helper:
                return _from_helper(helper, registry, runner)
    auths = data.get("auths")
    store = data.get("credsStore")
    if isinstance(store, str) and store:
        found = _from_helper(store, registry, runner)
        if found is not None:
            return found
    if isinstance(auths, dict):
        for key in _keys(registry):
            if key in auths:
                found = _from_auths(auths[key], key, path)
                if found is not None:
                    return found
    return None
