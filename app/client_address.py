"""Who is at the other end of a request: its address, and whether it is this machine.

The address is the ASGI peer. Behind a reverse proxy, uvicorn replaces it with the client that proxy names
in X-Forwarded-For, but only for proxies listed in FORWARDED_ALLOW_IPS (`mindrouter serve` passes the
setting on); from anyone else the header is ignored, so it cannot be forged from outside.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

# Headers a proxy adds. A request carrying one came through a proxy, even one on this machine (whose own
# address is loopback), so it is not a local caller.
_FORWARDING_HEADERS = ('forwarded', 'x-forwarded-for', 'x-real-ip')


def is_local_caller(request: Request) -> bool:
    """A process on this machine talking to the server directly: a loopback peer, and no proxy in between."""
    try:
        address = ipaddress.ip_address(request.client.host if request.client is not None else '')
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback and not any(name in request.headers for name in _FORWARDING_HEADERS)
