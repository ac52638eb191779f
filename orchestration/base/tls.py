"""The TLS context outbound HTTP clients verify servers with, made once per process.

httpx makes a context of its own for every client, and loading the CA bundle into it costs
about 20 ms of CPU. The app makes three clients at each start (providers and media, and the
notification sender's two), and the test suite starts an app for almost every test, so one
context per process, shared, saves about 40 ms of CPU per test (some 25 s per run of the
suite). An ``SSLContext`` may be shared by any number of connections and clients.

The context is httpx's own (``httpx.create_ssl_context``): the same CA bundle (certifi's, or
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when ``trust_env``) and the same settings.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def verifying(*, trust_env: bool = True) -> ssl.SSLContext:
    """The shared context, as httpx would make it with ``verify=True`` and ``trust_env``."""
    return httpx.create_ssl_context(trust_env=trust_env)
