"""TLS contexts: certificates verified against the system store plus certifi's (what httpx trusts), and
``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (OpenSSL reads them)."""

from __future__ import annotations

import functools
import ssl


@functools.cache
def verified_context(library: str) -> ssl.SSLContext:
    """One context per library (each may tune its own), built once: loading the stores costs milliseconds."""
    context = ssl.create_default_context()
    try:
        import certifi
    except ImportError:  # the system store alone
        return context
    context.load_verify_locations(certifi.where())
    return context
