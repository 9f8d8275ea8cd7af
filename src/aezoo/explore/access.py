"""Who may talk to the explorer (issue 22). The page hands out the run's config, metrics and data, so:

- **Host check.** Every request's ``Host`` header must name the address the server is bound to (for a
  loopback address: ``127.0.0.1``, ``localhost`` or ``::1``). A web page elsewhere can point its own
  domain at 127.0.0.1 (DNS rebinding) and read the answers as same-origin; its requests still carry
  its own domain in ``Host``, so they are refused (403).
- **Token.** Bound to any address but loopback (``--host 0.0.0.0``, a LAN address), the server also
  requires a token drawn at random per start and printed in the URL: ``?token=...`` on the first
  request, then a cookie (HttpOnly, SameSite=Strict) that the page's own requests carry. Bound to
  every interface (0.0.0.0, ::) the Host check cannot know the machine's names, so the token alone
  guards it.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from dataclasses import dataclass

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class Access:
    hosts: frozenset[str] | None = LOOPBACK_NAMES  # None: any Host (bound to every interface; the token guards)
    token: str | None = None
    port: int | None = None  # names the cookie, so explorers on two ports of one machine keep their own

    @property
    def cookie(self) -> str:
        return f"aezoo_token_{self.port}" if self.port else "aezoo_token"

    def host_allowed(self, header: str | None) -> bool:
        return self.hosts is None or host_name(header) in self.hosts

    def token_ok(self, given: str | None) -> bool:
        return self.token is None or (given is not None and hmac.compare_digest(given.encode(), self.token.encode()))


def host_name(header: str | None) -> str | None:
    """'LocalHost:8765' -> 'localhost', '[::1]:8765' -> '::1'; None for a missing or malformed header."""
    if not header:
        return None
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else None
    name = h.rsplit(":", 1)[0] if h.count(":") == 1 else h
    return name.rstrip(".") or None


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def for_socket(host: str, sock: socket.socket) -> Access:
    """The access rules of a server bound to ``sock`` (asked for as ``--host host``)."""
    address, port = sock.getsockname()[:2]
    if is_loopback(address):
        return Access(LOOPBACK_NAMES | {host.lower()}, None, port)
    token = secrets.token_urlsafe(24)
    if ipaddress.ip_address(address.split("%", 1)[0]).is_unspecified:
        return Access(None, token, port)
    return Access(frozenset({address.lower(), host.lower()}), token, port)


def outward_address() -> str:
    """This machine's address on its default route, for the URL printed with ``--host 0.0.0.0`` (a UDP
    connect sends nothing); the host name where there is no route."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached, only routed
        return s.getsockname()[0]
    except OSError:
        return socket.gethostname()
    finally:
        s.close()
