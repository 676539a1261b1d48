"""Fake GitHub REST API over real HTTP on loopback, in GitHub's JSON shapes.

Point a client's base URL (GITHUB_API_URL) at ``fake.base_url``.  What the
real API does and the fake reproduces:

- auth by ``Authorization: Bearer <token>`` (or ``token <token>``); a missing
  or unknown token is 401 ``{"message": "Bad credentials", ...}``;
- ``X-GitHub-Api-Version``: an unsupported version is 400 (absent is fine:
  GitHub then uses its default);
- error bodies as GitHub sends them: ``{"message", "documentation_url",
  "status"}`` (422 adds ``errors: [{resource, field, code}]``);
- pagination: ``per_page`` (default 30, at most 100) and ``page``, with the
  ``Link`` header (``next``, ``last``, ``first``, ``prev``); search answers
  ``{total_count, incomplete_results, items}``;
- the primary rate limit: ``X-RateLimit-Limit/-Remaining/-Used/-Reset/
  -Resource`` on every authenticated answer; out of quota, 403 "API rate
  limit exceeded ..." with ``X-RateLimit-Remaining: 0`` until the reset;
- the secondary rate limit: 403 (or 429) "You have exceeded a secondary rate
  limit ..." with ``Retry-After``.

Data is plain objects tests fill in (``add_user``, ``add_repo``,
``FakeRepo.add_issues`` ...); items carry GitHub's many URL fields so that a
test can see what trimming saves.  ``requests`` records what arrived.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from yarl import URL

SUPPORTED_VERSIONS = {"2022-11-28", "2026-03-10"}
DOCS = "https://docs.github.com/rest"
T0 = "2026-01-02T03:04:05Z"
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID "
    "FAKE:0000:0000000:0000000:00000000."
)

_ids = itertools.count(1000)
#: Who the request's token authenticates as.
LOGIN = web.RequestKey("login", str)


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def user_obj(login: str, base: str = "https://api.github.com") -> dict[str, Any]:
    """A user as GitHub embeds it in other objects (about 1 KB of URLs)."""
    u = f"{base}/users/{login}"
    return {
        "login": login,
        "id": abs(hash(login)) % 10_000_000,
        "node_id": f"MDQ6VXNlcj{login}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{login}?v=4",
        "gravatar_id": "",
        "url": u,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{u}/followers",
        "following_url": f"{u}/following{{/other_user}}",
        "gists_url": f"{u}/gists{{/gist_id}}",
        "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{u}/subscriptions",
        "organizations_url": f"{u}/orgs",
        "repos_url": f"{u}/repos",
        "events_url": f"{u}/events{{/privacy}}",
        "received_events_url": f"{u}/received_events",
        "type": "User",
        "user_view_type": "public",
        "site_admin": False,
    }


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeRepo:
    owner: str
    name: str
    description: str = "A repository"
    private: bool = False
    default_branch: str = "main"
    language: str | None = "Python"
    issues: list[dict[str, Any]] = field(default_factory=list)  # issues and PRs, by number
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path → text
    branches: list[str] = field(default_factory=lambda: ["main"])
    tags: list[str] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)
    workflows: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    stargazers: list[str] = field(default_factory=list)
    dispatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def api(self) -> str:
        return f"https://api.github.com/repos/{self.full_name}"

    def payload(self) -> dict[str, Any]:
        html = f"https://github.com/{self.full_name}"
        data: dict[str, Any] = {
            "id": abs(hash(self.full_name)) % 10_000_000,
            "name": self.name,
            "full_name": self.full_name,
            "private": self.private,
            "owner": user_obj(self.owner),
            "html_url": html,
            "description": self.description,
            "fork": False,
            "url": self.api,
            "created_at": T0,
            "updated_at": T0,
            "pushed_at": T0,
            "clone_url": f"{html}.git",
            "homepage": None,
            "size": 1234,
            "stargazers_count": len(self.stargazers),
            "watchers_count": len(self.stargazers),
            "language": self.language,
            "forks_count": 0,
            "archived": False,
            "open_issues_count": sum(1 for i in self.issues if i["state"] == "open"),
            "license": {"key": "mit", "name": "MIT License", "spdx_id": "MIT"},
            "topics": ["companion", "discord"],
            "default_branch": self.default_branch,
            "subscribers_count": 3,
        }
        # The dozens of *_url templates GitHub adds to every repository.
        for key in (
            "forks",
            "keys",
            "collaborators",
            "teams",
            "hooks",
            "issue_events",
            "events",
            "assignees",
            "branches",
            "tags",
            "blobs",
            "git_tags",
            "git_refs",
            "trees",
            "statuses",
            "languages",
            "stargazers",
            "contributors",
            "subscribers",
            "subscription",
            "commits",
            "git_commits",
            "comments",
            "issue_comment",
            "contents",
            "compare",
            "merges",
            "archive",
            "downloads",
            "issues",
            "pulls",
            "milestones",
            "notifications",
            "labels",
            "releases",
            "deployments",
        ):
            data[f"{key}_url"] = f"{self.api}/{key}{{/id}}"
        return data

    # -- filling in ------------------------------------------------------------
    def _issue(self, title: str, body: str, state: str, author: str, labels: list[str]) -> dict:
        number = len(self.issues) + 1
        issue = {
            "url": f"{self.api}/issues/{number}",
            "repository_url": self.api,
            "labels_url": f"{self.api}/issues/{number}/labels{{/name}}",
            "comments_url": f"{self.api}/issues/{number}/comments",
            "events_url": f"{self.api}/issues/{number}/events",
            "html_url": f"https://github.com/{self.full_name}/issues/{number}",
            "id": next(_ids),
            "node_id": f"I_kwDO{number:08d}",
            "number": number,
            "title": title,
            "user": user_obj(author),
            "labels": [
                {
                    "id": next(_ids),
                    "name": n,
                    "color": "d73a4a",
                    "default": False,
                    "description": f"{n} label",
                    "url": f"{self.api}/labels/{n}",
                }
                for n in labels
            ],
            "state": state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": 0,
            "created_at": T0,
            "updated_at": T0,
            "closed_at": None if state == "open" else T0,
            "author_association": "OWNER",
            "body": body,
            "reactions": {
                "url": f"{self.api}/issues/{number}/reactions",
                "total_count": 0,
                "+1": 0,
                "-1": 0,
                "laugh": 0,
                "hooray": 0,
                "confused": 0,
                "heart": 0,
                "rocket": 0,
                "eyes": 0,
            },
            "timeline_url": f"{self.api}/issues/{number}/timeline",
            "state_reason": None,
        }
        self.issues.append(issue)
        return issue

    def add_issue(
        self,
        title: str,
        body: str = "",
        *,
        state: str = "open",
        author: str = "octocat",
        labels: list[str] | None = None,
    ) -> dict[str, Any]:
        return self._issue(title, body, state, author, labels or [])

    def add_issues(self, count: int, *, body: str = "Steps to reproduce: ...") -> None:
        for k in range(count):
            self.add_issue(
                f"Issue number {len(self.issues) + 1}", body, labels=["bug"] if k % 3 == 0 else []
            )

    def add_pull(
        self, title: str, head: str, base: str = "main", *, body: str = "", author: str = "octocat"
    ) -> dict[str, Any]:
        issue = self._issue(title, body, "open", author, [])
        number = issue["number"]
        issue["pull_request"] = {
            "url": f"{self.api}/pulls/{number}",
            "html_url": f"https://github.com/{self.full_name}/pull/{number}",
        }
        pr = {
            **{k: v for k, v in issue.items() if k != "pull_request"},
            "html_url": f"https://github.com/{self.full_name}/pull/{number}",
            "url": f"{self.api}/pulls/{number}",
            "head": {
                "label": f"{self.owner}:{head}",
                "ref": head,
                "sha": _sha(head),
                "user": user_obj(self.owner),
                "repo": self.payload(),
            },
            "base": {
                "label": f"{self.owner}:{base}",
                "ref": base,
                "sha": _sha(base),
                "user": user_obj(self.owner),
                "repo": self.payload(),
            },
            "draft": False,
            "merged": False,
            "mergeable": True,
            "commits": 1,
            "additions": 10,
            "deletions": 2,
            "changed_files": 1,
        }
        self.pulls[number] = pr
        return pr

    def add_commit(
        self, message: str, *, author: str = "Octo Cat", files: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        sha = _sha(f"{self.full_name}:{len(self.commits)}:{message}")
        commit = {
            "sha": sha,
            "node_id": f"C_{sha[:10]}",
            "commit": {
                "author": {"name": author, "email": "octo@example.com", "date": T0},
                "committer": {"name": author, "email": "octo@example.com", "date": T0},
                "message": message,
                "tree": {"sha": _sha(sha), "url": f"{self.api}/git/trees/{_sha(sha)}"},
                "url": f"{self.api}/git/commits/{sha}",
                "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned"},
            },
            "url": f"{self.api}/commits/{sha}",
            "html_url": f"https://github.com/{self.full_name}/commit/{sha}",
            "author": user_obj("octocat"),
            "committer": user_obj("octocat"),
            "parents": [],
            "stats": {"total": 0, "additions": 0, "deletions": 0},
            "files": files or [],
        }
        for f in commit["files"]:
            commit["stats"]["additions"] += f.get("additions", 0)
            commit["stats"]["deletions"] += f.get("deletions", 0)
        self.commits.insert(0, commit)  # newest first, as GitHub lists them
        return commit

    def add_workflow(self, name: str, path: str) -> dict[str, Any]:
        wf = {
            "id": next(_ids),
            "node_id": "W_x",
            "name": name,
            "path": path,
            "state": "active",
            "created_at": T0,
            "updated_at": T0,
            "url": f"{self.api}/actions/workflows/x",
            "html_url": f"https://github.com/{self.full_name}/blob/main/{path}",
            "badge_url": f"https://github.com/{self.full_name}/workflows/{name}/badge.svg",
        }
        self.workflows.append(wf)
        return wf

    def add_run(
        self,
        workflow: dict[str, Any],
        *,
        status: str = "completed",
        conclusion: str | None = "success",
        branch: str = "main",
    ) -> dict[str, Any]:
        run = {
            "id": next(_ids),
            "name": workflow["name"],
            "workflow_id": workflow["id"],
            "run_number": len(self.runs) + 1,
            "status": status,
            "conclusion": conclusion,
            "head_branch": branch,
            "head_sha": _sha(branch),
            "event": "push",
            "created_at": T0,
            "updated_at": T0,
            "path": workflow["path"],
            "html_url": f"https://github.com/{self.full_name}/actions/runs/{len(self.runs)}",
            "actor": user_obj("octocat"),
            "triggering_actor": user_obj("octocat"),
        }
        self.runs.insert(0, run)
        return run


@dataclass
class FakeGitHub:
    #: token → the login it authenticates as.
    tokens: dict[str, str] = field(default_factory=lambda: {"ghp_test_token": "octocat"})
    rate_limit: int = 5000
    #: Base URL for the Link header's page URLs; None: this server's own address.
    link_base: str | None = None
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.repos: dict[str, FakeRepo] = {}
        self.gists: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.starred: set[tuple[str, str]] = set()
        self.remaining = self.rate_limit
        self.reset_at = math.ceil(time.time()) + 3600
        self._secondary: list[tuple[int, float]] = []
        self._failures: list[tuple[int, str]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        for login in set(self.tokens.values()):
            self.add_user(login)

    # -- scripting ------------------------------------------------------------
    def add_user(self, login: str, **profile: Any) -> dict[str, Any]:
        user = {
            **user_obj(login),
            "name": profile.pop("name", login.title()),
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2011-01-25T18:44:36Z",
            "updated_at": T0,
            **profile,
        }
        self.users[login] = user
        return user

    def add_repo(self, owner: str, name: str, **kw: Any) -> FakeRepo:
        if owner not in self.users:
            self.add_user(owner)
        repo = FakeRepo(owner, name, **kw)
        self.repos[repo.full_name.lower()] = repo
        return repo

    def exhaust(self, reset_in: float) -> None:
        """Use up the primary quota; it comes back ``reset_in`` seconds from now."""
        self.remaining = 0
        self.reset_at = math.ceil(time.time() + reset_in)

    def set_remaining(self, remaining: int, reset_in: float = 3600) -> None:
        self.remaining = remaining
        self.reset_at = math.ceil(time.time() + reset_in)

    def secondary_limit(self, retry_after: float = 1, *, times: int = 1, status: int = 403) -> None:
        """The next ``times`` requests hit the secondary limit with Retry-After."""
        self._secondary += [(status, retry_after)] * times

    def fail_next(self, status: int, message: str, *, times: int = 1) -> None:
        self._failures += [(status, message)] * times

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- lifecycle --------------------------------------------------------------
    async def __aenter__(self) -> FakeGitHub:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/user", self._get_me)
        r.add_put("/user/starred/{owner}/{repo}", self._star)
        r.add_get("/users/{login}/gists", self._list_gists)
        r.add_get("/search/users", self._search_users)
        r.add_get("/search/repositories", self._search_repos)
        r.add_get("/gists", self._list_gists)
        r.add_post("/gists", self._create_gist)
        r.add_get("/notifications", self._notifications)
        p = "/repos/{owner}/{repo}"
        r.add_get(p, self._get_repo)
        r.add_get(p + "/branches", self._branches)
        r.add_get(p + "/tags", self._tags)
        r.add_get(p + "/releases", self._releases)
        r.add_get(p + "/stargazers", self._stargazers)
        r.add_get(p + "/issues", self._list_issues)
        r.add_post(p + "/issues", self._create_issue)
        r.add_get(p + "/issues/{number}", self._get_issue)
        r.add_get(p + "/issues/{number}/comments", self._list_comments)
        r.add_post(p + "/issues/{number}/comments", self._create_comment)
        r.add_get(p + "/pulls", self._list_pulls)
        r.add_post(p + "/pulls", self._create_pull)
        r.add_get(p + "/pulls/{number}", self._get_pull)
        r.add_get(p + "/commits", self._list_commits)
        r.add_get(p + "/commits/{sha}", self._get_commit)
        r.add_get(p + "/contents/{path:.*}", self._get_contents)
        r.add_get(p + "/contents", self._get_contents)
        r.add_put(p + "/contents/{path:.*}", self._put_contents)
        r.add_get(p + "/actions/workflows", self._workflows)
        r.add_get(p + "/actions/runs", self._runs)
        r.add_get(p + "/actions/workflows/{wf}/runs", self._runs)
        r.add_post(p + "/actions/workflows/{wf}/dispatches", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- cross-cutting: auth, version, limits --------------------------------------
    @staticmethod
    def error(status: int, message: str, **extra: Any) -> web.Response:
        body = {"message": message, **extra, "documentation_url": DOCS, "status": str(status)}
        return web.json_response(body, status=status)

    def _limit_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Used": str(self.rate_limit - max(self.remaining, 0)),
            "X-RateLimit-Reset": str(self.reset_at),
            "X-RateLimit-Resource": "core",
        }

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body
            )
        )
        version = request.headers.get("X-GitHub-Api-Version")
        if version is not None and version not in SUPPORTED_VERSIONS:
            return self.error(
                400,
                f"Unsupported 'X-GitHub-Api-Version' header '{version}'. The supported "
                f"versions are {', '.join(sorted(SUPPORTED_VERSIONS))}.",
            )
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        login = self.tokens.get(token.strip()) if scheme.lower() in ("bearer", "token") else None
        if login is None:
            return self.error(401, "Bad credentials")
        request[LOGIN] = login
        if self._secondary:
            status, retry_after = self._secondary.pop(0)
            resp = self.error(status, SECONDARY_MESSAGE)
            resp.headers["Retry-After"] = str(int(retry_after))
            resp.headers.update(self._limit_headers())
            return resp
        now = time.time()
        if now >= self.reset_at:
            self.remaining = self.rate_limit
            self.reset_at = math.ceil(now) + 3600
        if self.remaining <= 0:
            resp = self.error(
                403,
                f"API rate limit exceeded for user ID {user_obj(login)['id']}. If you reach out "
                "to GitHub Support for help, please include the request ID FAKE:0000.",
            )
            resp.headers.update(self._limit_headers())
            return resp
        self.remaining -= 1
        if self._failures:
            status, message = self._failures.pop(0)
            resp = self.error(status, message)
        else:
            try:
                resp = await handler(request)  # type: ignore[assignment]
            except web.HTTPNotFound:
                resp = self.error(404, "Not Found")
        resp.headers.update(self._limit_headers())
        resp.headers["X-GitHub-Api-Version-Selected"] = version or "2022-11-28"
        return resp

    # -- helpers -------------------------------------------------------------------
    def _repo(self, request: web.Request) -> FakeRepo:
        key = f"{request.match_info['owner']}/{request.match_info['repo']}".lower()
        repo = self.repos.get(key)
        if repo is None:
            raise web.HTTPNotFound()
        return repo

    def _paged(
        self,
        request: web.Request,
        items: list[Any],
        *,
        wrap: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> web.Response:
        try:
            per_page = max(1, min(int(request.query.get("per_page", 30)), 100))
            page = max(1, int(request.query.get("page", 1)))
        except ValueError:
            return FakeGitHub.error(422, "Validation Failed")
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        url: URL = request.url
        if self.link_base:  # a Link pointing at another host (a proxy's mistake, or worse)
            url = URL(self.link_base).with_path(url.path).with_query(url.query)

        def link(n: int, rel: str) -> str:
            return f'<{url.update_query(page=n, per_page=per_page)}>; rel="{rel}"'

        links = []
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        data: Any = chunk if wrap is None else {**(extra or {}), wrap: chunk}
        resp = web.json_response(data)
        if links:
            resp.headers["Link"] = ", ".join(links)
        return resp

    @staticmethod
    def _int(request: web.Request, key: str) -> int:
        try:
            return int(request.match_info[key])
        except ValueError:
            raise web.HTTPNotFound() from None

    # -- endpoints -----------------------------------------------------------------
    async def _get_me(self, request: web.Request) -> web.Response:
        return web.json_response(self.users[request[LOGIN]])

    async def _search_users(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "").lower()
        if not q:
            return self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "Search", "field": "q", "code": "missing"}],
            )
        found = [{**user_obj(u), "score": 1.0} for u in self.users if q in u.lower()]
        return self._paged(
            request,
            found,
            wrap="items",
            extra={"total_count": len(found), "incomplete_results": False},
        )

    async def _search_repos(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "").lower()
        if not q:
            return self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "Search", "field": "q", "code": "missing"}],
            )
        words = q.split()
        found = [
            {**r.payload(), "score": 1.0}
            for r in self.repos.values()
            if all(w in f"{r.full_name} {r.description}".lower() for w in words)
        ]
        return self._paged(
            request,
            found,
            wrap="items",
            extra={"total_count": len(found), "incomplete_results": False},
        )

    async def _get_repo(self, request: web.Request) -> web.Response:
        return web.json_response(self._repo(request).payload())

    async def _branches(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        items = [
            {
                "name": b,
                "commit": {"sha": _sha(b), "url": f"{repo.api}/commits/{_sha(b)}"},
                "protected": b == repo.default_branch,
            }
            for b in repo.branches
        ]
        return self._paged(request, items)

    async def _tags(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        items = [
            {
                "name": t,
                "commit": {"sha": _sha(t), "url": f"{repo.api}/commits/{_sha(t)}"},
                "zipball_url": f"{repo.api}/zipball/refs/tags/{t}",
                "tarball_url": f"{repo.api}/tarball/refs/tags/{t}",
                "node_id": "T_x",
            }
            for t in repo.tags
        ]
        return self._paged(request, items)

    async def _releases(self, request: web.Request) -> web.Response:
        return self._paged(request, self._repo(request).releases)

    async def _stargazers(self, request: web.Request) -> web.Response:
        return self._paged(request, [user_obj(u) for u in self._repo(request).stargazers])

    async def _star(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        self.starred.add((request[LOGIN], repo.full_name))
        if request[LOGIN] not in repo.stargazers:
            repo.stargazers.append(request[LOGIN])
        return web.Response(status=204)

    async def _list_issues(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        state = request.query.get("state", "open")
        labels = {x for x in request.query.get("labels", "").split(",") if x}
        items = [
            i
            for i in reversed(repo.issues)
            if state in ("all", i["state"]) and labels <= {lab["name"] for lab in i["labels"]}
        ]
        return self._paged(request, items)

    async def _get_issue(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        n = self._int(request, "number")
        if not 1 <= n <= len(repo.issues):
            raise web.HTTPNotFound()
        return web.json_response(repo.issues[n - 1])

    async def _create_issue(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await request.json()
        if not isinstance(body, dict) or not str(body.get("title") or "").strip():
            return self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "Issue", "code": "missing_field", "field": "title"}],
            )
        issue = repo.add_issue(
            body["title"],
            body.get("body") or "",
            author=request[LOGIN],
            labels=list(body.get("labels") or []),
        )
        return web.json_response(issue, status=201)

    async def _list_comments(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        n = self._int(request, "number")
        if not 1 <= n <= len(repo.issues):
            raise web.HTTPNotFound()
        return self._paged(request, repo.comments.get(n, []))

    async def _create_comment(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        n = self._int(request, "number")
        if not 1 <= n <= len(repo.issues):
            raise web.HTTPNotFound()
        body = await request.json()
        if not str((body or {}).get("body") or "").strip():
            return self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
            )
        cid = next(_ids)
        comment = {
            "id": cid,
            "body": body["body"],
            "user": user_obj(request[LOGIN]),
            "created_at": T0,
            "updated_at": T0,
            "html_url": f"https://github.com/{repo.full_name}/issues/{n}#issuecomment-{cid}",
            "url": f"{repo.api}/issues/comments/{cid}",
            "author_association": "OWNER",
        }
        repo.comments.setdefault(n, []).append(comment)
        repo.issues[n - 1]["comments"] += 1
        return web.json_response(comment, status=201)

    async def _list_pulls(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        state = request.query.get("state", "open")
        items = [
            p for _, p in sorted(repo.pulls.items(), reverse=True) if state in ("all", p["state"])
        ]
        return self._paged(request, items)

    async def _get_pull(self, request: web.Request) -> web.Response:
        pr = self._repo(request).pulls.get(self._int(request, "number"))
        if pr is None:
            raise web.HTTPNotFound()
        return web.json_response(pr)

    async def _create_pull(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        body = await request.json()
        errors = [
            {"resource": "PullRequest", "field": f, "code": "invalid"}
            for f in ("head", "base")
            if (body or {}).get(f) not in repo.branches
        ]
        if not str((body or {}).get("title") or "").strip():
            errors.append({"resource": "PullRequest", "field": "title", "code": "missing_field"})
        if errors:
            return self.error(422, "Validation Failed", errors=errors)
        pr = repo.add_pull(
            body["title"],
            body["head"],
            body["base"],
            body=body.get("body") or "",
            author=request[LOGIN],
        )
        pr["draft"] = bool(body.get("draft"))
        return web.json_response(pr, status=201)

    async def _list_commits(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        sha = request.query.get("sha")
        if sha and sha not in repo.branches:
            return self.error(404, "No commit found for SHA: " + sha)
        return self._paged(
            request,
            [{k: v for k, v in c.items() if k not in ("files", "stats")} for c in repo.commits],
        )

    async def _get_commit(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        sha = request.match_info["sha"]
        for c in repo.commits:
            if c["sha"].startswith(sha) and len(sha) >= 4:
                return web.json_response(c)
        return self.error(422, f"No commit found for SHA: {sha}")

    def _content(self, repo: FakeRepo, path: str) -> dict[str, Any]:
        text = repo.files[path]
        raw = text.encode()
        b64 = base64.encodebytes(raw).decode()  # GitHub wraps the base64 every 60 chars
        return {
            "type": "file",
            "encoding": "base64",
            "size": len(raw),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": b64,
            "sha": _sha("blob " + text),
            "url": f"{repo.api}/contents/{path}",
            "html_url": f"https://github.com/{repo.full_name}/blob/main/{path}",
            "download_url": f"https://raw.githubusercontent.com/{repo.full_name}/main/{path}",
            "_links": {"self": f"{repo.api}/contents/{path}"},
        }

    async def _get_contents(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        path = request.match_info.get("path", "").strip("/")
        if path in repo.files:
            return web.json_response(self._content(repo, path))
        prefix = f"{path}/" if path else ""
        children: dict[str, str] = {}
        for f in repo.files:
            if f.startswith(prefix):
                head, _, rest = f[len(prefix) :].partition("/")
                children[head] = "dir" if rest else "file"
        if not children:
            raise web.HTTPNotFound()
        return web.json_response(
            [
                {
                    "name": n,
                    "path": prefix + n,
                    "type": t,
                    "size": len(repo.files[prefix + n].encode()) if t == "file" else 0,
                }
                for n, t in sorted(children.items())
            ]
        )

    async def _put_contents(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        path = request.match_info["path"].strip("/")
        body = await request.json()
        if not isinstance(body, dict) or "message" not in body or "content" not in body:
            return self.error(422, 'Invalid request.\n\n"message" and "content" are required.')
        if path in repo.files:
            current = _sha("blob " + repo.files[path])
            if not body.get("sha"):
                return self.error(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
            if body["sha"] != current:
                return self.error(409, f"{path} does not match {body['sha']}")
        created = path not in repo.files
        repo.files[path] = base64.b64decode(body["content"]).decode()
        commit = repo.add_commit(body["message"])
        return web.json_response(
            {"content": self._content(repo, path), "commit": {"sha": commit["sha"]}},
            status=201 if created else 200,
        )

    async def _workflows(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        return self._paged(
            request, repo.workflows, wrap="workflows", extra={"total_count": len(repo.workflows)}
        )

    def _workflow(self, repo: FakeRepo, ref: str) -> dict[str, Any]:
        for wf in repo.workflows:
            if ref in (str(wf["id"]), wf["path"].rsplit("/", 1)[-1]):
                return wf
        raise web.HTTPNotFound()

    async def _runs(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        runs = repo.runs
        if "wf" in request.match_info:
            wf = self._workflow(repo, request.match_info["wf"])
            runs = [r for r in runs if r["workflow_id"] == wf["id"]]
        for key, field_name in (("branch", "head_branch"), ("status", "status")):
            if request.query.get(key):
                runs = [r for r in runs if r[field_name] == request.query[key]]
        return self._paged(request, runs, wrap="workflow_runs", extra={"total_count": len(runs)})

    async def _dispatch(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        wf = self._workflow(repo, request.match_info["wf"])
        body = await request.json()
        if (body or {}).get("ref") not in repo.branches + repo.tags:
            return self.error(422, f"No ref found for: {(body or {}).get('ref')}")
        repo.dispatches.append({"workflow": wf["id"], **body})
        repo.add_run(wf, status="queued", conclusion=None, branch=body["ref"])
        return web.Response(status=204)

    async def _list_gists(self, request: web.Request) -> web.Response:
        login = request.match_info.get("login", request[LOGIN])
        if login not in self.users:
            raise web.HTTPNotFound()
        mine = login == request[LOGIN]
        gists = [g for g in self.gists if g["owner"]["login"] == login and (mine or g["public"])]
        return self._paged(request, list(reversed(gists)))

    async def _create_gist(self, request: web.Request) -> web.Response:
        body = await request.json()
        files = (body or {}).get("files") or {}
        if not files or not all(str((f or {}).get("content") or "") for f in files.values()):
            return self.error(
                422,
                "Validation Failed",
                errors=[{"resource": "Gist", "code": "missing_field", "field": "files"}],
            )
        gid = _sha(f"gist{len(self.gists)}")[:20]
        gist = {
            "id": gid,
            "public": bool(body.get("public")),
            "description": body.get("description") or "",
            "owner": user_obj(request[LOGIN]),
            "created_at": T0,
            "updated_at": T0,
            "html_url": f"https://gist.github.com/{gid}",
            "files": {
                n: {
                    "filename": n,
                    "size": len(f["content"]),
                    "type": "text/plain",
                    "raw_url": f"https://gist.githubusercontent.com/{gid}/raw/{n}",
                }
                for n, f in files.items()
            },
        }
        self.gists.append(gist)
        return web.json_response(gist, status=201)

    async def _notifications(self, request: web.Request) -> web.Response:
        everything = request.query.get("all") == "true"
        return self._paged(
            request, [n for n in self.notifications if everything or n.get("unread", True)]
        )
