"""A bare hello-world endpoint on examreg's server stack: the ceiling a real endpoint is held to.

Run it exactly like the API (Starlette on uvicorn with uvloop and httptools, same worker count):
    uvicorn loadtest.hello_app:app --loop uvloop --http httptools --workers 2 --no-access-log
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def hello(request: Request) -> Response:
    return Response(b'{"hello":"world"}', media_type="application/json")


app = Starlette(routes=[Route("/hello", hello, methods=["GET", "PUT", "POST"])])
