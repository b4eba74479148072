"""The lab console: a Starlette app of server-rendered pages over one run, and the steering actions.

Pages read through `RunView` (on a worker thread: a first read of a long record must not stall a
live team sharing this event loop). Actions are POSTed forms; each is written to the run's
steering log with the operator's name before it takes effect, then redirects back (or, for a
bad form, shows the page again with what was wrong and the text as typed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, get_args

import anyio
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from client.console.access import COOKIE, Access
from client.console.front import FrontDoor, ToolRefused
from client.console.plot import agent_colours, pgr_chart
from client.console.records import PAGE_EVENTS
from client.console.run import RunView
from client.console.sources import iso
from servers.forum.models import Body, PostKind, Tags, Title
from servers.kit.errors import ToolInputError
from servers.kit.settings import Settings
from servers.pgr.store import QUARANTINABLE
from servers.storage.store import open_repository

HERE = Path(__file__).parent
FORUM_PAGE = 50
SNAPSHOT_ID = re.compile(r"[0-9a-f]{7,40}")
T = TypeVar("T")


class HumanPost(BaseModel):
    """A post written in the console: the forum's own limits apply."""

    kind: PostKind
    title: Title
    body: Body
    tags: Tags


class OperatorOnly(BaseHTTPMiddleware):
    """Refuse anyone the access rule does not name; remember a token given in the URL as a cookie."""

    def __init__(self, app: Any, access: Access) -> None:
        super().__init__(app)
        self.access = access

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        operator = self.access.operator(request)
        if operator is None:
            hint = "open the URL with ?token= that `aar console` printed" if self.access.needs_token else ""
            return PlainTextResponse(f"not allowed: {hint or 'use a loopback address (127.0.0.1 or localhost)'}", 403)
        request.state.operator = operator
        if "token" in request.query_params and request.method == "GET":
            response: Response = RedirectResponse(request.url.remove_query_params("token"), 303)
            response.set_cookie(COOKIE, request.query_params["token"], httponly=True, samesite="strict")
            return response
        return await call_next(request)


def create_console(view: RunView, access: Access) -> Starlette:
    """The console app for one run (live when `view.live` is set)."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["iso"] = iso
    templates.env.filters["pgr"] = lambda value: "–" if value is None else f"{value:.2f}"
    templates.env.filters["pretty"] = lambda value: json.dumps(value, indent=1, ensure_ascii=False)  # autoescaped

    def front_door() -> FrontDoor:
        """Live: the run's servers once they are up; finished: each server started for the call."""
        live = view.live is not None
        return FrontDoor(view.run_dir.servers_dir, live=live, links=view.live.servers if view.live else None)

    async def off_loop(function: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(function, *args)

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        context.update(
            run=view.name,
            live=view.live is not None,
            operator=request.state.operator,
            form_secret=access.form_secret,
            agents=view.agents(),
        )
        return templates.TemplateResponse(request, template, context, status_code=status_code)

    async def checked_form(request: Request) -> dict[str, str]:
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        if not access.form_ok(fields.get("form_secret")):
            raise HTTPException(403, "this form did not come from this console (reload the page and try again)")
        return fields

    async def team(request: Request) -> Response:
        data = await off_loop(view.team)
        template = "team_live.html" if request.query_params.get("partial") else "team.html"
        return page(request, template, team=data, summary=view.summary())

    async def team_json(request: Request) -> Response:
        return JSONResponse(await off_loop(view.team))

    async def steer(request: Request) -> Response:
        await checked_form(request)
        if view.live is None:
            raise HTTPException(409, "this run is not live here: agents are steered in the console of `aar run`")
        agent, action = request.path_params["agent"], request.path_params["action"]
        try:
            view.live.controls.act(agent, action, request.state.operator)
        except ValueError as error:
            raise HTTPException(404, str(error)) from None
        return RedirectResponse("/", 303)

    async def pgr(request: Request) -> Response:
        points = await off_loop(view.chart_points)
        colours = agent_colours(view.agents())
        span = (view.info().get("elapsed_s") or 0) / 60
        charts = {task: pgr_chart(task, task_points, colours, span) for task, task_points in points.items()}
        return page(request, "pgr.html", charts=charts, count=len({p.submission for ps in points.values() for p in ps}))

    async def leaderboard(request: Request) -> Response:
        rows = await off_loop(view.servers.pgr.leaderboard)
        for row in rows:
            row["citing"] = await off_loop(view.servers.forum.citing, row["id"], row["snapshot"])
        return page(request, "leaderboard.html", rows=rows)

    async def submission(request: Request, error: str = "", status_code: int = 200) -> Response:
        found = await off_loop(view.servers.pgr.submission, request.path_params["id"])
        if found is None:
            raise HTTPException(404, f"no submission {request.path_params['id']!r} in this run")
        citing = await off_loop(view.servers.forum.citing, found["id"], found["snapshot"])
        return page(request, "submission.html", status_code, submission=found, citing=citing, error=error)

    async def quarantine(request: Request) -> Response:
        fields = await checked_form(request)
        reason = fields.get("reason", "").strip()
        if not reason:
            return await submission(request, error="say why the submission is quarantined", status_code=400)
        submission_id = request.path_params["id"]
        found = await off_loop(view.servers.pgr.submission, submission_id)
        if found is None or found["state"] not in (*QUARANTINABLE, "quarantined"):
            state = "not in this run" if found is None else found["state"]
            return await submission(
                request, error=f"only scored submissions can be quarantined; this one is {state}", status_code=400
            )
        view.actions.append(by=request.state.operator, action="quarantine", target=submission_id, detail=reason)
        try:
            await front_door().call(request.state.operator, "pgr", "quarantine", {"submission_id": submission_id})
        except ToolRefused as error:  # e.g. its state changed since it was read
            return await submission(request, error=str(error), status_code=400)
        return RedirectResponse(f"/submissions/{submission_id}", 303)

    async def snapshot(request: Request) -> Response:
        if not SNAPSHOT_ID.fullmatch(request.path_params["id"]):
            raise HTTPException(404, "a snapshot id is 7 to 40 hexadecimal digits")
        settings = Settings(data_dir=view.run_dir.servers_dir)
        if not (settings.data_dir / "storage.git").exists():
            raise HTTPException(404, "this run has no snapshot repository")
        repository = await open_repository(settings)
        try:
            found = await repository.snapshot(request.path_params["id"])
            diff = await repository.diff(found.parents[0], found.id, None) if found.parents else None
        except ToolInputError as error:
            raise HTTPException(404, str(error)) from None
        return page(request, "snapshot.html", snapshot=found, diff=diff)

    async def forum(request: Request, error: str = "", draft: dict[str, str] | None = None) -> Response:
        """Threads by latest activity; with a search or a filter, the matching posts instead."""
        params = request.query_params
        filters = {key: params.get(key) or None for key in ("kind", "tag", "author")}
        query = params.get("q", "").strip()
        try:
            offset = max(0, int(params.get("offset", 0)))
        except ValueError:
            raise HTTPException(400, "offset must be a number") from None
        threads = not query and not any(filters.values())
        try:
            if threads:
                posts = await off_loop(lambda: view.servers.forum.threads(limit=FORUM_PAGE, offset=offset))
            else:
                found = view.servers.forum.posts
                posts = await off_loop(lambda: found(query=query or None, limit=FORUM_PAGE, offset=offset, **filters))
        except ToolInputError as problem:
            posts, error = [], str(problem)
        facets = await off_loop(view.servers.forum.facets)
        status_code = 400 if error else 200
        newer = f"?{request.url.include_query_params(offset=max(0, offset - FORUM_PAGE)).query}" if offset else None
        more = len(posts) == FORUM_PAGE
        older = f"?{request.url.include_query_params(offset=offset + FORUM_PAGE).query}" if more else None
        return page(
            request, "forum.html", status_code, posts=posts, threads=threads, query=query, filters=filters,
            facets=facets, newer=newer, older=older, error=error, draft=draft or {}, kinds=get_args(PostKind),
        )  # fmt: skip

    async def thread(request: Request) -> Response:
        posts = await off_loop(view.servers.forum.thread, int(request.path_params["id"]))
        if not posts:
            raise HTTPException(404, f"no post {request.path_params['id']} in this run's forum")
        return page(request, "thread.html", posts=posts)

    async def post_as_human(request: Request) -> Response:
        fields = await checked_form(request)
        tags = [tag.strip() for tag in fields.get("tags", "").split(",") if tag.strip()]
        try:
            post = HumanPost(kind=fields.get("kind"), title=fields.get("title"), body=fields.get("body"), tags=tags)
        except ValidationError as problem:
            wrong = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in problem.errors())
            return await forum(request, error=f"not posted ({wrong}); fix it and post again", draft=fields)
        view.actions.append(by=request.state.operator, action="post", target="forum", detail=post.title)
        try:
            created = await front_door().call(request.state.operator, "forum", "post", post.model_dump())
        except ToolRefused as error:
            return await forum(request, error=f"not posted: {error}", draft=fields)
        return RedirectResponse(f"/forum/threads/{created['id']}", 303)

    async def transcripts(request: Request) -> Response:
        records = {agent: await off_loop(view.record, agent) for agent in view.agents()}
        return page(request, "transcripts.html", records=records)

    async def transcript(request: Request) -> Response:
        agent = request.path_params["agent"]
        try:
            record = await off_loop(view.record, agent)
        except KeyError:
            raise HTTPException(404, f"no agent {agent!r} in this run") from None
        pages = record.pages()
        latest = "page" not in request.query_params
        try:
            number = pages if latest else int(request.query_params["page"])
        except ValueError:
            raise HTTPException(400, "page must be a number") from None
        number = min(max(number, 1), pages)
        events = await (off_loop(record.latest) if latest else off_loop(record.page, number))
        return page(
            request, "transcript.html", agent=agent, record=record, events=events, number=number, pages=pages,
            per_page=PAGE_EVENTS, latest=latest,
        )  # fmt: skip

    async def integrity(request: Request) -> Response:
        return page(request, "integrity.html", data=await off_loop(view.integrity))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if not hasattr(request.state, "operator"):
            return PlainTextResponse(error.detail, error.status_code)
        return page(request, "error.html", error.status_code, status=error.status_code, message=error.detail)

    routes = [
        Route("/", team),
        Route("/api/team", team_json),
        Route("/agents/{agent}/{action}", steer, methods=["POST"]),
        Route("/pgr", pgr),
        Route("/leaderboard", leaderboard),
        Route("/submissions/{id}", submission),
        Route("/submissions/{id}/quarantine", quarantine, methods=["POST"]),
        Route("/snapshots/{id}", snapshot),
        Route("/forum", forum),
        Route("/forum/threads/{id:int}", thread),
        Route("/forum/posts", post_as_human, methods=["POST"]),
        Route("/transcripts", transcripts),
        Route("/transcripts/{agent}", transcript),
        Route("/integrity", integrity),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(OperatorOnly, access=access)],
        exception_handlers={HTTPException: http_error},
    )
