"""App: what happens to every request before and after its endpoint handler, in this order:

  blocked? (403 nginx page) → rate limit (429) → latency → injected failure (fail_requests) → route (404/405)
  → authentication and scopes (401/403) → handler → malformed-answer injection (garble_next) → request log.

Control requests (``/_emulator/…`` on the account host) skip the limits, the faults and the log. Owns the
routing table lookup (``endpoints.ROUTES`` bound to an ``Api``) and the nginx-style HTML pages; implements
``httpd.Handler``.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable

from amofs.emulator.endpoints import ROUTES, Api, Context, HttpError, Route, problem_response
from amofs.emulator.httpd import Request, Response
from amofs.emulator.traffic import Req

__all__ = ["App"]


def _nginx_page(status: int, text: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{status} {text}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {text}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ).encode()


_HTML = "text/html; charset=utf-8"
_PAGE_403 = _nginx_page(403, "Forbidden")
_PAGE_429 = _nginx_page(429, "Too Many Requests")
_GATEWAY_TEXT = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
_GARBLE_PAGE = (
    '<!DOCTYPE html>\n<html lang="ru"><head><meta charset="utf-8"><title>amoCRM</title></head>\n'
    "<body><h1>Технические работы</h1><p>Сервис временно недоступен. Попробуйте позже.</p></body></html>\n"
).encode()

Bound = Callable[..., Response]

log = logging.getLogger(__name__)


class App:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.api = Api(ctx)
        self._routes: dict[str, list[tuple[Route, Bound]]] = {}
        for route in ROUTES:
            for host in route.hosts:
                self._routes.setdefault(host, []).append((route, getattr(self.api, route.handler)))

    @staticmethod
    def _is_control(req: Request) -> bool:
        return req.host == "account" and req.path.startswith("/_emulator/")

    def handle(self, request: Request) -> Response:
        ctx, o = self.ctx, self.ctx.options
        control = self._is_control(request)
        if not control:
            if ctx.traffic.blocked:
                return Response(403, _PAGE_403, _HTML)
            wait = ctx.traffic.take(o.rate_limit)
            if wait > 0:
                ctx.traffic.violation(o.block_after)
                return self._too_many(request, wait)
            if o.latency > 0:
                ctx.stopping.wait(o.latency)
            failure = self._injected_failure(request)
            if failure is not None:
                return failure
        try:
            response = self._dispatch(request)
        except HttpError as e:
            response = problem_response(request, e)
        return response if control else self._garble(request, response)

    def done(self, request: Request, response: Response, bytes_out: int) -> None:
        if self._is_control(request):
            return
        log.info(
            "%s %s %s%s -> %d (%d bytes in, %d out)",
            request.host,
            request.method,
            request.path,
            "?" + request.query if request.query else "",
            response.status,
            request.bytes_in,
            bytes_out,
        )
        self.ctx.traffic.record(
            Req(
                host=request.host,
                method=request.method,
                path=request.path,
                query=request.query,
                status=response.status,
                bytes_in=request.bytes_in,
                bytes_out=bytes_out,
                auth="Authorization" in request.headers,
                time=request.arrived,
            )
        )

    def _dispatch(self, req: Request) -> Response:
        if req.bad_framing:
            raise HttpError(400, "bad Content-Length")
        method = "GET" if req.method == "HEAD" else req.method
        other_method = False
        for route, handler in self._routes.get(req.host, ()):
            m = route.pattern.fullmatch(req.path)
            if m is None:
                continue
            if route.method != method:
                other_method = True
                continue
            self._authorize(req, route)
            return handler(req, **m.groupdict())
        if other_method:
            raise HttpError(405, f"{req.method} is not allowed on {req.path}")
        raise HttpError(404, f"no such endpoint: {req.path}")

    def _authorize(self, req: Request, route: Route) -> None:
        if route.auth == "none":
            return
        scheme, _, token = (req.headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HttpError(401, "an Authorization: Bearer header is required")
        info = self.ctx.store.token_info(token)
        if info is None:
            raise HttpError(401, "unknown access token")
        if info.expires_at is not None and info.expires_at < time.time():
            raise HttpError(401, "access token expired")
        if route.auth == "main" and token != self.ctx.main_token:
            raise HttpError(403, "control endpoints need the emulator's main token")
        needed = {"files"} if route.auth == "files" else {"files", "files_delete"}
        if route.auth in ("files", "files_delete") and not needed <= info.scopes:
            missing = ", ".join(sorted(needed - info.scopes))
            raise HttpError(403, f"the token lacks the scope {missing}")
        req.user = info

    def _too_many(self, req: Request, wait: float) -> Response:
        if self.ctx.options.rate_limit_html:
            return Response(429, _PAGE_429, _HTML)
        err = HttpError(429, "too many requests", headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return problem_response(req, err)

    def _injected_failure(self, req: Request) -> Response | None:
        o = self.ctx.options
        if o.fail_requests <= 0:
            return None
        with self.ctx.fault_lock:
            if o.fail_requests <= 0 or not re.search(o.fail_requests_match, req.path):
                return None
            o.fail_requests -= 1
            status = o.fail_requests_status
        if status in _GATEWAY_TEXT:
            return Response(status, _nginx_page(status, _GATEWAY_TEXT[status]), _HTML)
        return problem_response(req, HttpError(status, "injected failure"))

    def _garble(self, req: Request, resp: Response) -> Response:
        o = self.ctx.options
        if o.garble_next <= 0 or resp.file is not None:
            return resp
        as_json = o.garble_mode == "json"
        if as_json and not (resp.body and resp.content_type and "json" in resp.content_type):
            return resp
        with self.ctx.fault_lock:
            if o.garble_next <= 0 or not re.search(o.garble_match, req.path):
                return resp
            o.garble_next -= 1
        if as_json:
            resp.body = resp.body[: len(resp.body) // 2]
            return resp
        return Response(200, _GARBLE_PAGE, _HTML)
