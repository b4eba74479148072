"""One CA store per client process: loading it takes ~40 ms, which a thousand agents' connections would each pay."""

from __future__ import annotations

import functools
import ssl

import httpx2


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    return httpx2.create_ssl_context()
