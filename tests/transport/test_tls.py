"""TLS over real sockets: a server whose certificate no trusted authority signed is refused, typed, on every backend;
one signed by an authority named in ``SSL_CERT_FILE`` is answered (the stores are the system's, certifi's and
OpenSSL's variables); and an async client loads the stores only once it calls an https URL, off the event loop."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmkit import ChatMessage, OpenAILike
from llmkit.errors import APIConnectionError
from llmkit.transport import HTTPTransport, Request
from llmkit.transport.tls import verified_context
from tests.conftest import free_port

trustme = pytest.importorskip("trustme", reason="the 'dev' extra is not installed: pip install 'llmkit[dev]'")

ROOT = Path(__file__).resolve().parents[2]
HI = [ChatMessage(role="user", content="hi")]
ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "over TLS"}, "finish_reason": "stop"}],
}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(ANSWER).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(MEDIA)))
        self.end_headers()
        self.wfile.write(MEDIA)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet test output; a refused handshake never reaches a handler


MEDIA = b"media over TLS"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An https chat server on 127.0.0.1 with a certificate from a throwaway authority; its URL and that
    authority's certificate file."""
    authority = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path_factory.mktemp("tls") / "authority.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    yield f"https://127.0.0.1:{server.server_address[1]}/v1", ca_file
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.usefixtures("http_backend")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_certificate_no_trusted_authority_signed_is_refused(tls_server: tuple[str, Path], mode: str) -> None:
    import asyncio

    llm = OpenAILike(model="m", api_base=tls_server[0], max_retries=0)
    with pytest.raises(APIConnectionError, match=r"(?i)certificate"):
        llm.chat(HI) if mode == "sync" else asyncio.run(llm.achat(HI))


_CLIENT = """
import asyncio, sys
from llmkit import ChatMessage, OpenAILike
from llmkit.errors import APIConnectionError
from llmkit.transport.tls import verified_context

hi = [ChatMessage(role="user", content="hi")]
url = sys.argv[1]

async def calls():
    closed = OpenAILike(model="m", api_base=sys.argv[2], max_retries=0)  # plain http, nothing listening
    try:
        await closed.achat(hi)
    except APIConnectionError:
        pass
    loaded_for_http = verified_context.cache_info().currsize
    first = OpenAILike(model="m", api_base=url)
    answers = await asyncio.gather(*(first.achat(hi) for _ in range(4)))  # the first https calls, at once
    shouting = OpenAILike(model="m", api_base=url.replace("https:", "HTTPS:"))
    answers.append(await shouting.achat(hi))
    loaded = verified_context.cache_info()
    assert {a.message.content for a in answers} == {"over TLS"}
    return loaded_for_http, (loaded.currsize, loaded.misses), answers[0].message.content

loaded_for_http, loaded, async_answer = asyncio.run(calls())
print(loaded_for_http, loaded, async_answer, OpenAILike(model="m", api_base=url).chat(hi).message.content, sep="|")
"""


@pytest.mark.parametrize("backend", ["default", "httpx"])
def test_an_authority_named_in_ssl_cert_file_is_trusted(
    tls_server: tuple[str, Path], backend: str, tmp_path: Path
) -> None:
    # A new process: the stores are loaded once per process, and SSL_CERT_FILE is read when they are.
    url, ca_file = tls_server
    env = {**os.environ, "SSL_CERT_FILE": str(ca_file), "PYTHONPATH": str(ROOT / "src")}
    env.pop("LLMKIT_HTTP_BACKEND", None)
    if backend == "httpx":
        env["LLMKIT_HTTP_BACKEND"] = "httpx"
    script = tmp_path / "client.py"
    script.write_text(_CLIENT)
    done = subprocess.run(
        [sys.executable, str(script), url, f"http://127.0.0.1:{free_port()}/v1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    loaded_for_http, loaded, async_answer, sync_answer = done.stdout.strip().split("|")
    assert (async_answer, sync_answer) == ("over TLS", "over TLS")
    if backend == "default":
        assert loaded_for_http == "0"  # aiohttp: an http-only client never loads the certificate stores
        # then the https calls (four at once, one to an upper-case scheme) used llmkit's verified context, loaded
        # once (aiohttp's own ssl=True would verify too, and read SSL_CERT_FILE, without it)
        assert loaded == "(1, 1)"


def _redirecting_to(target: str) -> type[BaseHTTPRequestHandler]:
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Redirect


@pytest.fixture
def trusting_llmkit_only(tls_server: tuple[str, Path]) -> Iterator[None]:
    """llmkit's verified contexts trust the test authority; the libraries' own default contexts do not."""
    verified_context.cache_clear()
    for library in ("aiohttp", "urllib3", "httpx"):
        verified_context(library).load_verify_locations(str(tls_server[1]))
    yield
    verified_context.cache_clear()  # the next user loads the stores afresh


@pytest.mark.usefixtures("http_backend", "trusting_llmkit_only")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_redirect_from_http_to_https_is_verified_with_llmkits_context(
    tls_server: tuple[str, Path], mode: str
) -> None:
    import asyncio

    origin = tls_server[0].rsplit("/v1", 1)[0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _redirecting_to(origin))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    transport = HTTPTransport(provider="media", follow_redirects=True, max_retries=0, timeout=10.0)
    request = Request("GET", f"http://127.0.0.1:{server.server_address[1]}/image.png")

    async def fetch() -> bytes:
        response = await transport.asend(request, stream=True)
        try:
            return b"".join([chunk async for chunk in response.aiter_bytes()])
        finally:
            await response.aclose()
            await transport.aclose()

    def fetch_sync() -> bytes:
        response = transport.send(request, stream=True)
        try:
            return b"".join(response.iter_bytes())
        finally:
            response.close()
            transport.close()

    try:
        assert (fetch_sync() if mode == "sync" else asyncio.run(fetch())) == MEDIA
    finally:
        server.shutdown()
        server.server_close()
