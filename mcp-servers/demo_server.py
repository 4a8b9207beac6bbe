"""A small MCP server built with the official Python SDK (PyPI `mcp`, v2 API) for the
ironhand-mcp tests: the same tools over streamable HTTP or over the older HTTP+SSE transport.

    mcp-servers/.venv/bin/python mcp-servers/demo_server.py streamable-http 127.0.0.1 8765
        -> http://127.0.0.1:8765/mcp
    mcp-servers/.venv/bin/python mcp-servers/demo_server.py sse 127.0.0.1 8765
        -> http://127.0.0.1:8765/sse (the server names its POST endpoint in the first event)

Installed by scripts/install-mcp-servers.sh (venv in mcp-servers/.venv).
"""

import struct
import sys
import zlib

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("ironhand-demo")


def _tiny_png() -> bytes:
    """A 2x2 red PNG, built by hand so the server needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 2x2, 8-bit RGB
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@server.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@server.tool()
def echo_headers(expected_authorization: str, ctx: Context) -> str:
    """Says whether the request carried the expected Authorization header (never echoes it)
    and the value of the X-Demo header."""
    headers = ctx.headers or {}
    got = headers.get("authorization")
    if got is None:
        auth = "missing"
    elif got == expected_authorization:
        auth = "match"
    else:
        auth = "mismatch"
    return f"authorization={auth} x-demo={headers.get('x-demo', '<none>')}"


@server.tool()
def tiny_image() -> Image:
    """Returns a tiny PNG image."""
    return Image(data=_tiny_png(), format="png")


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the given reason (a tool error, isError = true)."""
    raise ToolError(reason)


def main() -> None:
    if len(sys.argv) != 4 or sys.argv[1] not in ("streamable-http", "sse"):
        sys.exit("usage: demo_server.py streamable-http|sse HOST PORT")
    transport, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server.run(transport, host=host, port=port)  # type: ignore[call-overload]


if __name__ == "__main__":
    main()
