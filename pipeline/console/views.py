"""The console's pages and form handlers.

Pages: ``/queue``, ``/alerts/{alert_id}``, ``/staff/{staff_id}``. Forms
(POST, CSRF-checked by the app's middleware, answered with a redirect so a
reload never repeats them): ``/alerts/{id}/action`` (assign, unassign,
acknowledge, close, reopen, comment), ``/alerts/{id}/reveal``, ``/login``,
``/logout``. The queue's filter travels in the query string of every link
from it, so the alert page's next/previous follow the queue the analyst came
from.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

from aiohttp import web
from multidict import MultiDictProxy

from pipeline.console.app import (
    ANALYST,
    CONFIG,
    MASK,
    RELAY,
    SIGNER,
    STORE,
    client_of,
    https,
    render,
)
from pipeline.console.charts import (
    TimelinePoint,
    feature_bars,
    feature_chart,
    histogram_chart,
    timeline_chart,
)
from pipeline.console.filters import PAGE_SIZES, STATE_CHOICES, FilterError, QueueFilter, QueueKey
from pipeline.console.identity import SESSION_COOKIE, Analyst, session_token
from pipeline.console.store import COUNT_CAP, ActionRequest, AlertView
from pipeline.console.workflow import (
    ACTIONS,
    ROLES,
    SEVERITIES,
    VERDICT_LABELS,
    VERDICTS,
    InputError,
    WorkflowError,
    clean_comment,
    clean_name,
    feedback_for,
    parse_revision,
)
from pipeline.detect.catalogue import CATALOGUE

EVIDENCE_LIMIT: Final = 500
STAFF_ALERTS_LIMIT: Final = 500
MIN_REVEAL_REASON: Final = 5
PUBLISH_WAIT_S: Final = 5.0
NOTICES: Final = {
    "assign": "Assigned.",
    "unassign": "Unassigned.",
    "acknowledge": "Acknowledged: the alert is yours to work.",
    "closed": "Closed. The verdict was published on the feedback topic.",
    "closed_pending": "Closed. The verdict is queued and will be published on the feedback "
    "topic as soon as the broker answers.",
    "reopen": "Re-opened.",
    "comment": "Comment added.",
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", lambda _r: _redirect("/queue"))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/queue", queue_page)
    app.router.add_get("/alerts/{alert_id}", alert_page)
    app.router.add_post("/alerts/{alert_id}/action", alert_action)
    app.router.add_post("/alerts/{alert_id}/reveal", reveal)
    app.router.add_get("/staff/{staff_id}", staff_page)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)


async def _redirect(location: str) -> web.StreamResponse:
    raise web.HTTPSeeOther(location)


def _analyst(request: web.Request) -> Analyst:
    return request[ANALYST]


def _filter(request: web.Request, query: str | None = None) -> QueueFilter:
    params: dict[str, list[str]]
    if query is None:
        params = {k: request.query.getall(k) for k in set(request.query.keys())}
    else:
        params = parse_qs(query, keep_blank_values=False)
    return QueueFilter.parse(params, request.app[CONFIG].zone)


async def healthz(request: web.Request) -> web.Response:
    await request.app[STORE].counts(QueueFilter(limit=25), "")
    return web.Response(text="ok\n")


# -- queue ----------------------------------------------------------------------
def count_label(counts: dict[str, int], states: tuple[str, ...]) -> str:
    """
    >>> count_label({"open": 10_001, "closed": 5}, ("open", "closed"))
    '10,005+'
    >>> count_label({"open": 42}, ("open",))
    '42'
    """
    total = sum(min(counts.get(s, 0), COUNT_CAP) for s in states)
    capped = any(counts.get(s, 0) > COUNT_CAP for s in states)
    return f"{total:,}+" if capped else f"{total:,}"


async def queue_page(request: web.Request) -> web.Response:
    me = _analyst(request).name
    try:
        f = _filter(request)
        after = request.query.get("after")
        before = request.query.get("before")
        after_key = QueueKey.decode(after) if after else None
        before_key = QueueKey.decode(before) if before else None
    except FilterError as exc:
        f = QueueFilter(zone=request.app[CONFIG].zone)
        return render(
            request,
            "queue.html",
            status=400,
            error=str(exc),
            **await _queue_context(request, f, me, None, None),
        )
    return render(
        request,
        "queue.html",
        error=None,
        **await _queue_context(request, f, me, after_key, before_key),
    )


async def _queue_context(
    request: web.Request,
    f: QueueFilter,
    me: str,
    after: QueueKey | None,
    before: QueueKey | None,
) -> dict[str, Any]:
    store = request.app[STORE]
    page = await store.queue(f, me, after, before)
    counts = await store.counts(f, me)
    groups = {
        "active": ("open", "acknowledged"),
        "open": ("open",),
        "acknowledged": ("acknowledged",),
        "closed": ("closed",),
        "all": ("open", "acknowledged", "closed"),
    }
    return {
        "f": f,
        "page": page,
        "count_labels": {k: count_label(counts, v) for k, v in groups.items()},
        "branches": await store.branches(),
        "severities": SEVERITIES,
        "roles": ROLES,
        "reasons": sorted(CATALOGUE),
        "states": STATE_CHOICES,
        "page_sizes": PAGE_SIZES,
        "state_links": {s: f.with_state(s).query() for s in STATE_CHOICES},
        "qs": f.query(),
    }


# -- alert ----------------------------------------------------------------------
async def alert_page(request: web.Request) -> web.Response:
    alert_id = request.match_info["alert_id"]
    view = await request.app[STORE].alert(alert_id)
    if view is None:
        return render(
            request,
            "error.html",
            status=404,
            title="No such alert",
            message=f"there is no alert {alert_id}",
        )
    notice = NOTICES.get(request.query.get("done", ""))
    try:
        f = _filter(request)
    except FilterError:
        f = QueueFilter(zone=request.app[CONFIG].zone)
    await request.app[STORE].audit(
        _analyst(request).name, "view_alert", alert_id=alert_id, client=client_of(request)
    )
    return render(request, "alert.html", **await _alert_context(request, view, f, notice, None))


async def _alert_context(
    request: web.Request,
    view: AlertView,
    f: QueueFilter,
    notice: str | None,
    error: str | None,
) -> dict[str, Any]:
    store = request.app[STORE]
    mask = request.app[MASK]
    me = _analyst(request).name
    prev_id, next_id = await store.neighbours(f, me, view.key)
    evidence = await store.evidence(view.alert_id, EVIDENCE_LIMIT)
    model = view.payload.get("model") if isinstance(view.payload.get("model"), dict) else None
    bars = feature_bars(model.get("top_features") or []) if model else []
    refs = sorted({r for r in (mask(str(x)) for x in view.payload.get("customer_refs") or []) if r})
    return {
        "a": view,
        "w": view.workflow,
        "p": view.payload,
        "reasons": list(view.payload.get("reasons") or []),
        "model": model,
        "feature_svg": feature_chart(bars),
        "revisions": await store.revisions(view.alert_id),
        "evidence": evidence,
        "masked_ref": {e.event_id: mask(e.customer_ref) for e in evidence},
        "customer_refs": refs,
        "activity": await store.activity(view.alert_id),
        "feedback": await store.feedback(view.alert_id),
        "outbox": await store.outbox(view.alert_id),
        "prev_id": prev_id,
        "next_id": next_id,
        "qs": f.query(),
        "f": f,
        "verdicts": [(v, VERDICT_LABELS[v]) for v in VERDICTS],
        "may_reveal": _analyst(request).has_role(request.app[CONFIG].reveal_role),
        "notice": notice,
        "error": error,
        "catalogue": CATALOGUE,
        "evidence_limit": EVIDENCE_LIMIT,
    }


def _text(form: MultiDictProxy[Any], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


async def alert_action(request: web.Request) -> web.StreamResponse:
    alert_id = request.match_info["alert_id"]
    store = request.app[STORE]
    analyst = _analyst(request)
    form = await request.post()
    action = _text(form, "action") or ""
    queue_qs = _text(form, "q") or ""
    try:
        f = _filter(request, queue_qs)
    except FilterError:
        f, queue_qs = QueueFilter(zone=request.app[CONFIG].zone), ""
    try:
        req = _action_request(request, alert_id, analyst, action, form)
        await store.act(alert_id, req)
    except WorkflowError as exc:
        view = await store.alert(alert_id)
        if view is None:
            return render(
                request,
                "error.html",
                status=404,
                title="No such alert",
                message=f"there is no alert {alert_id}",
            )
        ctx = await _alert_context(request, view, f, None, str(exc))
        return render(request, "alert.html", status=exc.status, **ctx)
    done = action
    if action == "close":
        relay = request.app.get(RELAY)
        published = relay is not None and await relay.publish_now(PUBLISH_WAIT_S)
        done = "closed" if published else "closed_pending"
    query = urlencode([*parse_qs(queue_qs).items(), ("done", [done])], doseq=True)
    raise web.HTTPSeeOther(f"/alerts/{alert_id}?{query}")


def _action_request(
    request: web.Request,
    alert_id: str,
    analyst: Analyst,
    action: str,
    form: MultiDictProxy[Any],
) -> ActionRequest:
    if action not in ACTIONS:
        raise InputError(f"unknown action {action[:32]!r}")
    base: dict[str, Any] = {"action": action, "actor": analyst.name, "client": client_of(request)}
    if action == "assign":
        who = _text(form, "assignee") or analyst.name
        return ActionRequest(**base, assignee=clean_name(who, "assignee"))
    if action == "close":
        comment = clean_comment(_text(form, "comment"))
        fb = feedback_for(alert_id, _text(form, "verdict") or "", analyst.name, comment)
        return ActionRequest(
            **base,
            comment=comment,
            seen_revision=parse_revision(_text(form, "revision")),
            feedback=fb,
            topic=request.app[CONFIG].feedback_topic,
        )
    if action == "comment":
        return ActionRequest(**base, comment=clean_comment(_text(form, "comment"), required=True))
    if action == "reopen":
        return ActionRequest(**base, comment=clean_comment(_text(form, "comment"), required=True))
    return ActionRequest(**base)


# -- reveal ---------------------------------------------------------------------
async def reveal(request: web.Request) -> web.Response:
    alert_id = request.match_info["alert_id"]
    store = request.app[STORE]
    cfg = request.app[CONFIG]
    analyst = _analyst(request)
    form = await request.post()
    ref = (_text(form, "ref") or "").strip()
    reason = (_text(form, "reason") or "").strip()
    client = client_of(request)
    if not analyst.has_role(cfg.reveal_role):
        await store.audit(
            analyst.name,
            "reveal_denied",
            alert_id=alert_id,
            subject=ref[:64],
            reason=reason[:500] or None,
            client=client,
            detail={"missing_role": cfg.reveal_role},
        )
        return render(
            request,
            "error.html",
            status=403,
            title="Reveal refused",
            message=f"revealing a customer needs the role {cfg.reveal_role}; "
            "the attempt was recorded",
        )
    view = await store.alert(alert_id)
    if view is None:
        return render(
            request,
            "error.html",
            status=404,
            title="No such alert",
            message=f"there is no alert {alert_id}",
        )
    mask = request.app[MASK]
    known = {mask(str(x)) for x in view.payload.get("customer_refs") or []}
    known |= {mask(e.customer_ref) for e in await store.evidence(alert_id, EVIDENCE_LIMIT)}
    if ref not in known:
        await store.audit(
            analyst.name,
            "reveal_denied",
            alert_id=alert_id,
            subject=ref[:64],
            client=client,
            detail={"why": "not a customer of this alert"},
        )
        return render(
            request,
            "error.html",
            status=404,
            title="Unknown customer",
            message="that pseudonym is not among this alert's customers",
        )
    if len(reason) < MIN_REVEAL_REASON or len(reason) > 500:
        return render(
            request,
            "error.html",
            status=400,
            title="Reason needed",
            message=f"say why you need the customer's id ({MIN_REVEAL_REASON}-500 "
            "characters); it is recorded with your name",
        )
    raw = await store.reveal(analyst.name, ref, reason, alert_id, client)
    return render(request, "reveal.html", a=view, ref=ref, raw=raw, reason=reason)


# -- employee -------------------------------------------------------------------
async def staff_page(request: web.Request) -> web.Response:
    staff_id = request.match_info["staff_id"]
    store = request.app[STORE]
    zone = request.app[CONFIG].zone
    alerts = await store.staff_alerts(staff_id, STAFF_ALERTS_LIMIT)
    if not alerts:
        return render(
            request,
            "error.html",
            status=404,
            title="No alerts",
            message=f"no alert names the employee {staff_id}",
        )
    activity = await store.staff_activity(staff_id, zone)
    await store.audit(
        _analyst(request).name, "view_staff", subject=staff_id, client=client_of(request)
    )
    start = min(a.first_event_at for a in alerts)
    end = max(a.last_event_at for a in alerts)
    if end - start < timedelta(days=1):
        start, end = start - timedelta(hours=12), end + timedelta(hours=12)
    points = [
        TimelinePoint(
            a.last_event_at,
            a.severity,
            a.risk_score,
            f"{a.severity} risk {a.risk_score:.0f}: {', '.join(a.reason_codes)}",
        )
        for a in alerts
    ]
    latest = alerts[0]
    return render(
        request,
        "staff.html",
        staff_id=staff_id,
        latest=latest,
        alerts=alerts,
        act=activity,
        timeline_svg=timeline_chart(points, start, end),
        hours_svg=histogram_chart(
            activity.by_hour, [f"{h:02d}" for h in range(24)], "Accesses by hour of day"
        ),
        baseline_bars=feature_bars(activity.baselines),
    )


# -- demo login -----------------------------------------------------------------
def local_path(target: str | None) -> str:
    """A redirect target on this site only (no scheme, host, or ``//``/``\\`` tricks).

    >>> local_path("/alerts/al-1?x=1"), local_path("//evil.example"), local_path("/\\evil")
    ('/alerts/al-1?x=1', '/queue', '/queue')
    """
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return "/queue"
    if "\\" in target or any(ord(c) < 32 for c in target):
        return "/queue"
    return target


async def login_page(request: web.Request) -> web.Response:
    if request.app[CONFIG].identity_header is not None:
        raise web.HTTPNotFound()
    return render(request, "login.html", next=local_path(request.query.get("next")), error=None)


async def login(request: web.Request) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    if cfg.identity_header is not None:
        raise web.HTTPNotFound()
    form = await request.post()
    target = local_path(_text(form, "next"))
    try:
        name = clean_name(_text(form, "name"), "name")
    except InputError as exc:
        return render(request, "login.html", status=400, next=target, error=str(exc))
    roles = {"analyst"}
    if _text(form, "reveal") == "yes":
        roles.add(cfg.reveal_role)
    analyst = Analyst(name, frozenset(roles), "login")
    await request.app[STORE].audit(
        name, "login", client=client_of(request), detail={"roles": sorted(roles)}
    )
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        SESSION_COOKIE,
        session_token(request.app[SIGNER], analyst),
        httponly=True,
        samesite="Strict",
        path="/",
        secure=https(request),
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    analyst = _analyst(request)
    await request.app[STORE].audit(analyst.name, "logout", client=client_of(request))
    response = web.HTTPSeeOther(
        "/login" if request.app[CONFIG].identity_header is None else "/queue"
    )
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
