"""The console's aiohttp application: middlewares (identity, CSRF, headers), routes, templates.

:func:`create_app` wires a :class:`~pipeline.console.store.ConsoleStore` and an
optional :class:`~pipeline.console.feedback.FeedbackRelay` into an app; the
handlers live in :mod:`pipeline.console.views`. :func:`serve` runs it with the
real Postgres store and Kafka producer until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from pipeline.console.feedback import FeedbackRelay, feedback_producer
from pipeline.console.identity import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Analyst,
    IdentityError,
    Signer,
    analyst_from_headers,
    analyst_from_session,
    new_seed,
)
from pipeline.console.privacy import RefMasker
from pipeline.console.store import ConsoleStore
from pipeline.console.workflow import VERDICT_LABELS
from pipeline.settings import Settings, SettingsError

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Paths that need no identity.
_PUBLIC = ("/static/", "/healthz", "/login")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """What the handlers need from the settings, resolved once."""

    identity_header: str | None  # None: local login (dev_mode only)
    roles_header: str
    reveal_role: str
    feedback_topic: str
    zone: str
    secure_cookies: bool = False

    @classmethod
    def from_settings(cls, s: Settings) -> ConsoleConfig:
        header = s.console_identity_header.strip() or None
        if header is None and not s.dev_mode:
            raise SettingsError(
                "PIPELINE_CONSOLE_IDENTITY_HEADER is empty (local login), which needs "
                "PIPELINE_DEV_MODE=true; in production put the console behind a reverse proxy "
                "that sets the analyst's identity header"
            )
        return cls(
            identity_header=header,
            roles_header=s.console_roles_header,
            reveal_role=s.console_reveal_role,
            feedback_topic=s.feedback_topic,
            zone=s.bank_timezone,
        )


STORE = web.AppKey("store", ConsoleStore)
RELAY = web.AppKey("relay", FeedbackRelay)
CONFIG = web.AppKey("config", ConsoleConfig)
SIGNER = web.AppKey("signer", Signer)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
MASK = web.AppKey("mask", RefMasker)
ANALYST = web.RequestKey("analyst", Analyst)
SEED = web.RequestKey("csrf_seed", str)
FRESH: web.RequestKey[str | None] = web.RequestKey("csrf_fresh")


def console_secret(s: Settings) -> str:
    """The configured secret; a random one per process only with dev_mode."""
    if s.console_secret:
        return s.console_secret
    if not s.dev_mode:
        raise SettingsError(
            "PIPELINE_CONSOLE_SECRET (or PIPELINE_CONSOLE_SECRET_FILE) is required: it signs "
            "the console's CSRF tokens and sessions, and must be the same on every replica"
        )
    log.warning("no PIPELINE_CONSOLE_SECRET: using a random one (dev mode; sessions end at exit)")
    return secrets.token_urlsafe(32)


def _templates(zone: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = ZoneInfo(zone)

    def when(dt: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return "" if dt is None else dt.astimezone(tz).strftime(fmt)

    env.filters["when"] = when
    env.filters["verdict_label"] = lambda v: VERDICT_LABELS.get(v or "", v or "")
    env.filters["num"] = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)
    env.globals["zone"] = zone
    return env


def https(request: web.Request) -> bool:
    """Whether the browser talks HTTPS (directly, or to the TLS-terminating proxy)."""
    return (
        request.app[CONFIG].secure_cookies
        or request.secure
        or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    )


def client_of(request: web.Request) -> str | None:
    fwd = request.headers.get("X-Forwarded-For")
    return (fwd.split(",")[0].strip() if fwd else request.remote) or None


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    t0 = time.perf_counter()
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or SEED not in request:
            _security_headers(request, exc)
            raise
        response = render(
            request,
            "error.html",
            status=exc.status,
            title=exc.reason,
            message=exc.text or exc.reason,
        )
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.2f}"
    _security_headers(request, response)
    return response


def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if not request.path.startswith("/static/"):
        # pages show evidence and pseudonyms: keep them out of shared caches and history
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def identity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(_PUBLIC):
        return await handler(request)
    cfg = request.app[CONFIG]
    try:
        if cfg.identity_header is not None:
            request[ANALYST] = analyst_from_headers(
                request.headers, cfg.identity_header, cfg.roles_header
            )
        else:
            request[ANALYST] = analyst_from_session(
                request.app[SIGNER], request.cookies.get(SESSION_COOKIE)
            )
    except IdentityError as exc:
        if cfg.identity_header is None and request.method == "GET":
            raise web.HTTPSeeOther(f"/login?next={_safe_next(request.path_qs)}") from None
        return render(request, "error.html", status=401, title="Not signed in", message=str(exc))
    return await handler(request)


def _safe_next(path: str) -> str:
    from urllib.parse import quote

    return quote(path if path.startswith("/") and not path.startswith("//") else "/queue")


async def _audit_refusal(request: web.Request, name: str) -> None:
    if name:
        await request.app[STORE].audit(
            name, "csrf_refused", client=client_of(request), detail={"path": request.path}
        )


def _set_seed(request: web.Request, response: web.StreamResponse, fresh: str | None) -> None:
    if fresh is not None and not response.prepared:
        response.set_cookie(
            CSRF_COOKIE,
            fresh,
            httponly=True,
            samesite="Strict",
            secure=https(request),
            path="/",
        )


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    app = request.app
    analyst = request.get(ANALYST)
    csrf = app[SIGNER].csrf_token(request[SEED], analyst.name if analyst else "")
    cfg = app[CONFIG]
    body = (
        app[TEMPLATES]
        .get_template(template)
        .render(
            analyst=analyst,
            csrf=csrf,
            login_mode=cfg.identity_header is None,
            reveal_role=cfg.reveal_role,
            feedback_topic=cfg.feedback_topic,
            **context,
        )
    )
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def create_app(
    settings: Settings,
    store: ConsoleStore,
    relay: FeedbackRelay | None = None,
    secret: str | None = None,
) -> web.Application:
    from pipeline.console import views

    app = web.Application(
        middlewares=[headers_middleware, csrf_middleware_first, identity_middleware, csrf_check],
        client_max_size=256 * 1024,
    )
    app[STORE] = store
    if relay is not None:
        app[RELAY] = relay
    app[CONFIG] = ConsoleConfig.from_settings(settings)
    app[SIGNER] = Signer(secret or console_secret(settings))
    app[TEMPLATES] = _templates(settings.bank_timezone)
    app[MASK] = RefMasker(settings.pseudonym_key)
    views.add_routes(app)
    app.router.add_static("/static/", HERE / "static", append_version=True)
    return app


# The CSRF seed must exist before identity (the 401 and login pages render
# forms), and the token check needs the analyst: two halves of one middleware.
@web.middleware
async def csrf_middleware_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    seed = request.cookies.get(CSRF_COOKIE)
    fresh = None if seed else new_seed()
    request[SEED] = fresh if fresh is not None else (seed or "")
    request[FRESH] = fresh
    response: web.StreamResponse
    if (
        request.method not in ("GET", "HEAD", "OPTIONS")
        and request.headers.get("Sec-Fetch-Site") == "cross-site"
    ):
        response = render(
            request,
            "error.html",
            status=403,
            title="Refused",
            message="cross-site form submission refused",
        )
    else:
        response = await handler(request)
    _set_seed(request, response, fresh)
    return response


@web.middleware
async def csrf_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return await handler(request)
    form = await request.post()
    if any(isinstance(v, str) and "\x00" in v for v in form.values()):
        # Postgres text cannot hold NUL: refuse here, with a clear 400, not a 500 later.
        raise web.HTTPBadRequest(text="a form field holds a NUL character")
    token = form.get("csrf")
    analyst = request.get(ANALYST)
    name = analyst.name if analyst is not None else ""
    valid = request[FRESH] is None and request.app[SIGNER].check_csrf(
        request[SEED], name, token if isinstance(token, str) else None
    )
    if not valid:
        await _audit_refusal(request, name)
        return render(
            request,
            "error.html",
            status=403,
            title="Form expired",
            message="the form's security token is missing or does not match; "
            "reload the page and submit again",
        )
    return await handler(request)


async def serve(settings: Settings, stop_after: float | None = None) -> None:
    """Run the console with Postgres and Kafka until SIGINT/SIGTERM (or ``stop_after`` s)."""
    from pipeline.console.pgstore import PostgresStore

    secret = console_secret(settings)
    ConsoleConfig.from_settings(settings)  # fail before connecting to anything
    store = await PostgresStore.connect(settings.database_url)
    relay = FeedbackRelay(store, lambda: feedback_producer(settings))
    await relay.start()
    app = create_app(settings, store, relay, secret)
    runner = web.AppRunner(app, access_log=log if settings.log_level == "debug" else None)
    await runner.setup()
    site = web.TCPSite(runner, settings.console_bind, settings.console_port)
    await site.start()
    print(f"console: http://{settings.console_bind}:{settings.console_port}/queue", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if stop_after is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), stop_after)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        await relay.stop()
        await store.close()
