"""A real third-party OpenID provider on loopback: panva's ``oidc-provider`` on Node.js.

``provider_home`` installs the pinned package (``tests/gateway/oidc/package-lock.json``) with
``npm ci`` into a cache folder on first use; ``OpenIDProvider`` runs ``provider.mjs`` there on a
free port and gets tokens from it by the client-credentials grant with a resource indicator.
Without ``node`` or ``npm`` the tests are skipped with the reason, except under ``CI=true``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from gateway_support import free_port
from joserfc.jwk import ECKey, OKPKey, RSAKey

__all__ = ["OpenIDProvider", "private_jwk", "provider_home"]

HERE = Path(__file__).resolve().parent / "oidc"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CACHE = Path(os.environ.get("MATGATE_TEST_CACHE", Path.home() / ".cache" / "matgate-tests"))


def provider_home() -> Path:
    """A folder holding ``provider.mjs`` and its installed ``node_modules``."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "Node.js (node and npm) is needed to run the OpenID provider"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: it must be installed)")
        pytest.skip(message)
    lock = (HERE / "package-lock.json").read_bytes()
    home = CACHE / f"oidc-provider-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (home / "node_modules" / "oidc-provider" / "package.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="oidc-provider-", dir=CACHE))
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, work / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=work,
            check=True,
            timeout=600,
            capture_output=True,
        )
        try:
            work.rename(home)  # atomic: parallel sessions never see a half-installed folder
        except OSError:
            shutil.rmtree(work, ignore_errors=True)  # another session was first
    shutil.copy(HERE / "provider.mjs", home / "provider.mjs")
    return home


def private_jwk(alg: str, kid: str) -> dict[str, Any]:
    """A fresh private JWK for ``alg`` (RS256, ES256 or EdDSA)."""
    if alg == "RS256":
        key: Any = RSAKey.generate_key(2048, private=True)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    else:
        key = OKPKey.generate_key("Ed25519", private=True)
    return {**key.as_dict(private=True), "kid": kid, "alg": alg, "use": "sig"}


class OpenIDProvider:
    """One oidc-provider process on 127.0.0.1, issuing JWT access tokens to its clients."""

    def __init__(
        self,
        home: Path,
        *,
        audience: str,
        clients: list[dict[str, Any]],
        keys: list[dict[str, Any]],
        claims_supported: list[str] | None = None,
    ) -> None:
        self.home = home
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.audience = audience
        self.clients = {c["client_id"]: c for c in clients}
        self.keys = keys
        self.claims_supported = claims_supported or []
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> OpenIDProvider:
        """Run the provider and wait until it listens."""
        config = {
            "port": self.port,
            "audience": self.audience,
            "jwks": {"keys": self.keys},
            "clients": list(self.clients.values()),
            "claims_supported": self.claims_supported,
        }
        env = {**os.environ, "OIDC_TEST_CONFIG": json.dumps(config), "NODE_ENV": "test"}
        self._process = subprocess.Popen(
            [shutil.which("node") or "node", "provider.mjs"],
            cwd=self.home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the OpenID provider did not start: {line!r}")
        return self

    def stop(self) -> None:
        """Stop the provider process."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def rotate(self, keys: list[dict[str, Any]]) -> None:
        """Restart on the same port with another key set (the first key of an alg signs)."""
        self.stop()
        self.keys = keys
        for _ in range(50):
            try:
                self.start()
                return
            except RuntimeError:
                time.sleep(0.1)  # the port may linger a moment
        raise RuntimeError("the OpenID provider did not restart")

    def token(self, client_id: str, scope: str | None = None) -> str:
        """An access token for ``client_id`` (client credentials, resource = audience)."""
        data = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": self.clients[client_id]["client_secret"],
            "resource": self.audience,
        }
        if scope:
            data["scope"] = scope
        r = httpx.post(f"{self.issuer}/token", data=data, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def hits(self) -> dict[str, int]:
        """How often the discovery document and the JWKS were served."""
        return dict(httpx.get(f"{self.issuer}/_hits", timeout=5).json())
