"""The ``github_*`` tools: GitHub REST calls trimmed to what the model needs.

Each tool returns short lines of text (numbers, titles, states, URLs, dates),
never GitHub's JSON: an issue list answer is ~100 bytes per issue instead of
~4 KB.  Long free text (issue bodies, comments, files, patches) is clipped and
says so.  Lists take ``limit`` (default ``DEFAULT_LIMIT``, the model may raise it
up to ``MAX_LIMIT``) and say when there is more.

Writes are marked ``admin_only`` unless GITHUB_WRITE_ROLES=everyone, and open to
the roles GITHUB_WRITE_ROLES names (``Tool.roles``); the registry enforces both
server-side, from the caller's Discord facts.  Their descriptions and results say what
was written where.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from ..registry import Tool, ToolContext, ToolError, ToolRegistry
from .client import GitHubClient, Page

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 30
MAX_LIMIT = 300
BODY_CHARS = 2000
COMMENT_CHARS = 600
FILE_CHARS = 12_000
PATCH_CHARS = 1500
#: No tool answer exceeds this, whatever GitHub sent.
RESULT_CHARS = 32_000
TOOL_TIMEOUT = 90.0

Handler = Callable[[dict[str, Any]], Awaitable[str]]


# -- formatting helpers ---------------------------------------------------------
def clip(text: Any, limit: int) -> str:
    text = str(text or "").strip()
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + f"… [clipped: {len(text) - limit} more characters]"


def one_line(text: Any, limit: int = 120) -> str:
    return clip(" ".join(str(text or "").split()), limit)


def day(ts: Any) -> str:
    return str(ts or "")[:10]


def _login(obj: Any) -> str:
    return str(obj.get("login")) if isinstance(obj, dict) and obj.get("login") else "?"


def _labels(obj: dict[str, Any]) -> str:
    names = [lab.get("name") for lab in obj.get("labels") or [] if isinstance(lab, dict)]
    return f" [{', '.join(n for n in names if n)}]" if names else ""


def _footer(page: Page, noun: str, limit: int) -> str:
    shown = len(page.items)
    total = f" of {page.total}" if page.total is not None else ""
    if page.more:
        more = (
            f" More exist: pass a larger limit (up to {MAX_LIMIT})."
            if limit < MAX_LIMIT
            else f" More exist beyond the {MAX_LIMIT} cap; narrow the query."
        )
    else:
        more = ""
    return f"({shown}{total} {noun} shown.{more})"


def _finish(text: str) -> str:
    """Cap an answer at RESULT_CHARS, dropping whole item lines from the end of
    the list but keeping the last line (the footer that says what was shown)."""
    if len(text) <= RESULT_CHARS:
        return text
    lines = text.split("\n")
    footer = lines.pop()
    kept: list[str] = []
    size = len(footer) + 100
    for line in lines:
        if size + len(line) + 1 > RESULT_CHARS:
            break
        kept.append(line)
        size += len(line) + 1
    dropped = len(lines) - len(kept)
    if not kept:  # one enormous line: clip it instead
        return clip(text, RESULT_CHARS)
    return "\n".join([*kept, f"({dropped} more lines not shown to keep this short.)", footer])


def _repo(args: dict[str, Any]) -> tuple[str, str]:
    owner = str(args.get("owner") or "").strip()
    repo = str(args.get("repo") or "").strip()
    if "/" in repo and repo.split("/", 1)[0] == owner:  # the model passed "owner/name"
        repo = repo.split("/", 1)[1]
    if not owner or not repo:
        raise ToolError("give the repository as owner and repo, e.g. owner='python' repo='cpython'")
    return owner, repo


def _path(owner: str, repo: str) -> str:
    return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"


def _limit(args: dict[str, Any]) -> int:
    try:
        return max(1, min(int(args.get("limit") or DEFAULT_LIMIT), MAX_LIMIT))
    except (TypeError, ValueError):
        return DEFAULT_LIMIT


def _number(args: dict[str, Any], key: str) -> int:
    value = args.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ToolError(f"{key} must be a positive number")
    return value


# -- schemas -----------------------------------------------------------------
_OWNER = {"type": "string", "description": "Repository owner (user or organisation)."}
_REPO = {"type": "string", "description": "Repository name."}
_LIMIT = {
    "type": "integer",
    "description": f"Most items to return (default {DEFAULT_LIMIT}, up to {MAX_LIMIT}).",
}


def _schema(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def _repo_schema(required: list[str] | None = None, **props: dict[str, Any]) -> dict[str, Any]:
    return _schema(["owner", "repo", *(required or [])], owner=_OWNER, repo=_REPO, **props)


# -- the tools -------------------------------------------------------------------
class GitHubTools:
    def __init__(self, client: GitHubClient) -> None:
        self.gh = client

    async def _list(
        self,
        path: str,
        args: dict[str, Any],
        *,
        params: Any = None,
        key: str | None = None,
        what: str = "",
    ) -> tuple[Page, int]:
        limit = _limit(args)
        page = await self.gh.paginate(path, limit=limit, params=params, key=key, what=what)
        return page, limit

    # users ---------------------------------------------------------------------
    async def get_me(self, args: dict[str, Any]) -> str:
        u = await self.gh.request("GET", "/user", what="authenticated user")
        lines = [f"Authenticated GitHub user: {u.get('login')}"]
        for label, key in (
            ("Name", "name"),
            ("Company", "company"),
            ("Location", "location"),
            ("Bio", "bio"),
            ("Profile", "html_url"),
        ):
            if u.get(key):
                lines.append(f"{label}: {one_line(u[key], 200)}")
        lines.append(
            f"Public repos: {u.get('public_repos', 0)}, followers: {u.get('followers', 0)}, "
            f"following: {u.get('following', 0)}, since {day(u.get('created_at'))}"
        )
        return "\n".join(lines)

    async def search_users(self, args: dict[str, Any]) -> str:
        q = str(args["query"]).strip()
        page, limit = await self._list("/search/users", args, params={"q": q}, key="items")
        lines = [f"GitHub users matching {q!r}:"]
        lines += [
            f"- {u.get('login')} ({u.get('type', 'User')}) {u.get('html_url', '')}"
            for u in page.items
        ]
        lines.append(_footer(page, "users", limit))
        return _finish("\n".join(lines))

    # repositories -------------------------------------------------------------
    @staticmethod
    def _repo_line(r: dict[str, Any]) -> str:
        lang = f", {r['language']}" if r.get("language") else ""
        desc = f" — {one_line(r['description'], 150)}" if r.get("description") else ""
        return (
            f"- {r.get('full_name')} ★{r.get('stargazers_count', 0)}{lang}, "
            f"updated {day(r.get('updated_at') or r.get('pushed_at'))}{desc}"
        )

    async def search_repositories(self, args: dict[str, Any]) -> str:
        q = str(args["query"]).strip()
        params: dict[str, Any] = {"q": q}
        if args.get("sort"):
            params["sort"] = args["sort"]
        page, limit = await self._list("/search/repositories", args, params=params, key="items")
        lines = [f"Repositories matching {q!r}:"]
        lines += [self._repo_line(r) for r in page.items]
        lines.append(_footer(page, "repositories", limit))
        return _finish("\n".join(lines))

    async def get_repository(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        r = await self.gh.request("GET", _path(owner, repo), what=f"repository {owner}/{repo}")
        lines = [
            f"{r.get('full_name')} ({'private' if r.get('private') else 'public'}"
            f"{', archived' if r.get('archived') else ''}{', fork' if r.get('fork') else ''})",
            f"Description: {one_line(r.get('description'), 300) or '-'}",
            f"Default branch: {r.get('default_branch')}, language: {r.get('language') or '-'}",
            f"Stars {r.get('stargazers_count', 0)}, forks {r.get('forks_count', 0)}, "
            f"open issues+PRs {r.get('open_issues_count', 0)}, watchers "
            f"{r.get('subscribers_count', r.get('watchers_count', 0))}",
            f"Created {day(r.get('created_at'))}, last push {day(r.get('pushed_at'))}",
            f"URL: {r.get('html_url')}",
        ]
        if r.get("topics"):
            lines.append(f"Topics: {', '.join(r['topics'][:20])}")
        lic = r.get("license")
        if isinstance(lic, dict) and lic.get("spdx_id"):
            lines.append(f"License: {lic['spdx_id']}")
        return "\n".join(lines)

    async def list_branches(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        page, limit = await self._list(
            f"{_path(owner, repo)}/branches", args, what=f"repository {owner}/{repo}"
        )
        lines = [f"Branches of {owner}/{repo}:"]
        lines += [
            f"- {b.get('name')} @ {str((b.get('commit') or {}).get('sha', ''))[:7]}"
            f"{' (protected)' if b.get('protected') else ''}"
            for b in page.items
        ]
        lines.append(_footer(page, "branches", limit))
        return _finish("\n".join(lines))

    async def list_tags(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        page, limit = await self._list(
            f"{_path(owner, repo)}/tags", args, what=f"repository {owner}/{repo}"
        )
        lines = [f"Tags of {owner}/{repo}:"]
        lines += [
            f"- {t.get('name')} @ {str((t.get('commit') or {}).get('sha', ''))[:7]}"
            for t in page.items
        ]
        lines.append(_footer(page, "tags", limit))
        return _finish("\n".join(lines))

    async def list_releases(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        page, limit = await self._list(
            f"{_path(owner, repo)}/releases", args, what=f"repository {owner}/{repo}"
        )
        lines = [f"Releases of {owner}/{repo}:"]
        for r in page.items:
            flags = "".join(
                f" ({f})"
                for f, on in (("draft", r.get("draft")), ("pre-release", r.get("prerelease")))
                if on
            )
            lines.append(
                f"- {r.get('tag_name')}: {one_line(r.get('name') or r.get('tag_name'), 100)}"
                f"{flags}, published {day(r.get('published_at'))} {r.get('html_url', '')}"
            )
            if r.get("body"):
                lines.append(f"  {one_line(r['body'], 300)}")
        lines.append(_footer(page, "releases", limit))
        return _finish("\n".join(lines))

    async def list_stargazers(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        page, limit = await self._list(
            f"{_path(owner, repo)}/stargazers", args, what=f"repository {owner}/{repo}"
        )
        lines = [f"Stargazers of {owner}/{repo}:"]
        lines += [f"- {_login(u)}" for u in page.items]
        lines.append(_footer(page, "stargazers", limit))
        return _finish("\n".join(lines))

    async def star_repository(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        await self.gh.request(
            "PUT",
            f"/user/starred/{quote(owner, safe='')}/{quote(repo, safe='')}",
            what=f"repository {owner}/{repo}",
        )
        return f"Starred {owner}/{repo} on GitHub for the token's account."

    # issues -----------------------------------------------------------------------
    @staticmethod
    def _issue_line(i: dict[str, Any]) -> str:
        return (
            f"- #{i.get('number')} [{i.get('state')}] {one_line(i.get('title'), 150)}"
            f"{_labels(i)} by {_login(i.get('user'))}, updated {day(i.get('updated_at'))}"
            f", {i.get('comments', 0)} comments"
        )

    async def list_issues(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        params: dict[str, Any] = {"state": args.get("state") or "open"}
        if args.get("labels"):
            params["labels"] = args["labels"]
        page, limit = await self._list(
            f"{_path(owner, repo)}/issues", args, params=params, what=f"repository {owner}/{repo}"
        )
        # GitHub's issue list includes pull requests; the model asked for issues.
        issues = [i for i in page.items if "pull_request" not in i]
        lines = [f"Issues in {owner}/{repo} ({params['state']}):"]
        lines += [self._issue_line(i) for i in issues] or ["(none)"]
        skipped = len(page.items) - len(issues)
        if skipped:
            lines.append(f"({skipped} pull requests left out: use github_list_pull_requests.)")
        lines.append(_footer(Page(issues, page.pages, page.more), "issues", limit))
        return _finish("\n".join(lines))

    async def get_issue(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        n = _number(args, "issue_number")
        i = await self.gh.request(
            "GET", f"{_path(owner, repo)}/issues/{n}", what=f"issue #{n} in {owner}/{repo}"
        )
        kind = "Pull request" if "pull_request" in i else "Issue"
        assignees = ", ".join(_login(a) for a in i.get("assignees") or []) or "-"
        lines = [
            f"{kind} #{i.get('number')} in {owner}/{repo}: {one_line(i.get('title'), 200)}",
            f"State: {i.get('state')}{_labels(i)}, by {_login(i.get('user'))}, opened "
            f"{day(i.get('created_at'))}, updated {day(i.get('updated_at'))}, "
            f"{i.get('comments', 0)} comments, assignees: {assignees}",
            f"URL: {i.get('html_url')}",
            "",
            clip(i.get("body"), BODY_CHARS) or "(no description)",
        ]
        return "\n".join(lines)

    async def create_issue(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        payload: dict[str, Any] = {"title": args["title"], "body": args.get("body") or ""}
        if args.get("labels"):
            payload["labels"] = list(args["labels"])
        i = await self.gh.request(
            "POST", f"{_path(owner, repo)}/issues", json=payload, what=f"repository {owner}/{repo}"
        )
        return f"Created issue #{i.get('number')} in {owner}/{repo}: {i.get('html_url')}"

    async def list_issue_comments(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        n = _number(args, "issue_number")
        page, limit = await self._list(
            f"{_path(owner, repo)}/issues/{n}/comments",
            args,
            what=f"issue #{n} in {owner}/{repo}",
        )
        lines = [f"Comments on #{n} in {owner}/{repo}:"]
        for c in page.items:
            lines.append(
                f"- {_login(c.get('user'))} on {day(c.get('created_at'))}: "
                f"{clip(c.get('body'), COMMENT_CHARS)}"
            )
        lines.append(_footer(page, "comments", limit))
        return _finish("\n".join(lines))

    async def create_issue_comment(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        n = _number(args, "issue_number")
        c = await self.gh.request(
            "POST",
            f"{_path(owner, repo)}/issues/{n}/comments",
            json={"body": args["body"]},
            what=f"issue #{n} in {owner}/{repo}",
        )
        return f"Commented on #{n} in {owner}/{repo}: {c.get('html_url')}"

    # pull requests --------------------------------------------------------------
    async def list_pull_requests(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        params = {"state": args.get("state") or "open"}
        page, limit = await self._list(
            f"{_path(owner, repo)}/pulls", args, params=params, what=f"repository {owner}/{repo}"
        )
        lines = [f"Pull requests in {owner}/{repo} ({params['state']}):"]
        for p in page.items:
            draft = " (draft)" if p.get("draft") else ""
            lines.append(
                f"- #{p.get('number')} [{p.get('state')}{draft}] {one_line(p.get('title'), 150)} "
                f"{(p.get('head') or {}).get('ref')} → {(p.get('base') or {}).get('ref')} by "
                f"{_login(p.get('user'))}, updated {day(p.get('updated_at'))}"
            )
        lines.append(_footer(page, "pull requests", limit))
        return _finish("\n".join(lines))

    async def get_pull_request(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        n = _number(args, "pull_number")
        p = await self.gh.request(
            "GET", f"{_path(owner, repo)}/pulls/{n}", what=f"pull request #{n} in {owner}/{repo}"
        )
        state = "merged" if p.get("merged") else p.get("state")
        lines = [
            f"Pull request #{p.get('number')} in {owner}/{repo}: {one_line(p.get('title'), 200)}",
            f"State: {state}{' (draft)' if p.get('draft') else ''}, "
            f"{(p.get('head') or {}).get('label')} → {(p.get('base') or {}).get('ref')}, by "
            f"{_login(p.get('user'))}, opened {day(p.get('created_at'))}",
            f"Changes: {p.get('commits', '?')} commits, {p.get('changed_files', '?')} files, "
            f"+{p.get('additions', '?')} -{p.get('deletions', '?')}; mergeable: "
            f"{p.get('mergeable')}",
            f"URL: {p.get('html_url')}",
            "",
            clip(p.get("body"), BODY_CHARS) or "(no description)",
        ]
        return "\n".join(lines)

    async def create_pull_request(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        payload = {
            "title": args["title"],
            "head": args["head"],
            "base": args["base"],
            "body": args.get("body") or "",
            "draft": bool(args.get("draft", False)),
        }
        p = await self.gh.request(
            "POST", f"{_path(owner, repo)}/pulls", json=payload, what=f"repository {owner}/{repo}"
        )
        return (
            f"Opened pull request #{p.get('number')} in {owner}/{repo} "
            f"({args['head']} → {args['base']}): {p.get('html_url')}"
        )

    # commits and files ---------------------------------------------------------
    async def list_commits(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        params = {k: args[k] for k in ("sha", "path", "author") if args.get(k)}
        page, limit = await self._list(
            f"{_path(owner, repo)}/commits", args, params=params, what=f"repository {owner}/{repo}"
        )
        lines = [f"Commits in {owner}/{repo}{' on ' + params['sha'] if 'sha' in params else ''}:"]
        for c in page.items:
            commit = c.get("commit") or {}
            author = commit.get("author") or {}
            lines.append(
                f"- {str(c.get('sha', ''))[:7]} {day(author.get('date'))} "
                f"{author.get('name', '?')}: {one_line(commit.get('message'), 120)}"
            )
        lines.append(_footer(page, "commits", limit))
        return _finish("\n".join(lines))

    async def get_commit(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        sha = str(args["sha"]).strip()
        c = await self.gh.request(
            "GET",
            f"{_path(owner, repo)}/commits/{quote(sha, safe='')}",
            what=f"commit {sha} in {owner}/{repo}",
        )
        commit = c.get("commit") or {}
        author = commit.get("author") or {}
        stats = c.get("stats") or {}
        files = c.get("files") or []
        lines = [
            f"Commit {c.get('sha')} in {owner}/{repo}",
            f"Author: {author.get('name')} on {author.get('date')}",
            f"+{stats.get('additions', 0)} -{stats.get('deletions', 0)} in {len(files)} files",
            f"URL: {c.get('html_url')}",
            "",
            clip(commit.get("message"), BODY_CHARS),
            "",
        ]
        for f in files[:50]:
            lines.append(
                f"{f.get('status')} {f.get('filename')} "
                f"(+{f.get('additions', 0)} -{f.get('deletions', 0)})"
            )
            if f.get("patch"):
                lines.append(clip(f["patch"], PATCH_CHARS))
        if len(files) > 50:
            lines.append(f"({len(files) - 50} more files not shown)")
        return _finish("\n".join(lines))

    def _contents_path(self, owner: str, repo: str, path: str) -> str:
        return f"{_path(owner, repo)}/contents/{quote(path.strip('/'), safe='/')}"

    async def get_file_contents(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        path = str(args.get("path") or "").strip("/")
        params = {"ref": args["ref"]} if args.get("ref") else None
        data = await self.gh.request(
            "GET",
            self._contents_path(owner, repo, path),
            params=params,
            what=f"path {path or '/'} in {owner}/{repo}",
        )
        if isinstance(data, list):  # a directory
            lines = [f"Directory {path or '/'} in {owner}/{repo}:"]
            lines += [
                f"- {e.get('name')}{'/' if e.get('type') == 'dir' else ''}"
                f"{'' if e.get('type') == 'dir' else ' (' + str(e.get('size', 0)) + ' B)'}"
                for e in data[:500]
            ]
            return _finish("\n".join(lines))
        if data.get("type") != "file":
            return f"{path} in {owner}/{repo} is a {data.get('type')}, not a file."
        raw = data.get("content")
        if data.get("encoding") != "base64" or raw is None:
            return (
                f"{path} in {owner}/{repo} is too large to fetch through this API "
                f"({data.get('size')} bytes); see {data.get('html_url')}"
            )
        blob = base64.b64decode(raw)
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            return f"{path} in {owner}/{repo} is a binary file ({len(blob)} bytes)."
        header = f"File {path} in {owner}/{repo} ({len(blob)} bytes, sha {data.get('sha')}):"
        return f"{header}\n{clip(text, FILE_CHARS)}"

    async def create_or_update_file(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        path = str(args["path"]).strip("/")
        url = self._contents_path(owner, repo, path)
        sha = args.get("sha")
        if not sha:
            # Updating needs the current blob's sha; find it rather than make the
            # model call twice.  A 404 means a new file.
            try:
                params = {"ref": args["branch"]} if args.get("branch") else None
                current = await self.gh.request("GET", url, params=params, what="file")
                if isinstance(current, dict):
                    sha = current.get("sha")
            except ToolError as exc:
                if "found no" not in str(exc):
                    raise
        payload: dict[str, Any] = {
            "message": args["message"],
            "content": base64.b64encode(str(args["content"]).encode()).decode(),
        }
        if args.get("branch"):
            payload["branch"] = args["branch"]
        if sha:
            payload["sha"] = sha
        out = await self.gh.request("PUT", url, json=payload, what=f"repository {owner}/{repo}")
        commit = (out or {}).get("commit") or {}
        verb = "Updated" if sha else "Created"
        where = f" on branch {args['branch']}" if args.get("branch") else ""
        return (
            f"{verb} {path} in {owner}/{repo}{where} (commit "
            f"{str(commit.get('sha', ''))[:7]}): "
            f"{((out or {}).get('content') or {}).get('html_url', '')}"
        )

    # actions ---------------------------------------------------------------------
    async def list_workflows(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        page, limit = await self._list(
            f"{_path(owner, repo)}/actions/workflows",
            args,
            key="workflows",
            what=f"repository {owner}/{repo}",
        )
        lines = [f"Workflows in {owner}/{repo}:"]
        lines += [
            f"- {w.get('id')} {w.get('name')} ({w.get('path')}) [{w.get('state')}]"
            for w in page.items
        ]
        lines.append(_footer(page, "workflows", limit))
        return _finish("\n".join(lines))

    async def list_workflow_runs(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        wf = args.get("workflow_id")
        path = (
            f"{_path(owner, repo)}/actions/workflows/{quote(str(wf), safe='')}/runs"
            if wf
            else f"{_path(owner, repo)}/actions/runs"
        )
        params = {k: args[k] for k in ("branch", "status") if args.get(k)}
        page, limit = await self._list(
            path, args, params=params, key="workflow_runs", what=f"workflow runs in {owner}/{repo}"
        )
        lines = [f"Workflow runs in {owner}/{repo}:"]
        for r in page.items:
            lines.append(
                f"- {r.get('id')} {r.get('name')} #{r.get('run_number')}: {r.get('status')}"
                f"{'/' + r['conclusion'] if r.get('conclusion') else ''} on "
                f"{r.get('head_branch')} ({r.get('event')}), {day(r.get('created_at'))} "
                f"{r.get('html_url', '')}"
            )
        lines.append(_footer(page, "runs", limit))
        return _finish("\n".join(lines))

    async def run_workflow(self, args: dict[str, Any]) -> str:
        owner, repo = _repo(args)
        wf = str(args["workflow_id"])
        payload: dict[str, Any] = {"ref": args["ref"]}
        if args.get("inputs"):
            payload["inputs"] = args["inputs"]
        await self.gh.request(
            "POST",
            f"{_path(owner, repo)}/actions/workflows/{quote(wf, safe='')}/dispatches",
            json=payload,
            what=f"workflow {wf} in {owner}/{repo}",
        )
        return (
            f"Started workflow {wf} in {owner}/{repo} on {args['ref']}; see "
            "github_list_workflow_runs for its run."
        )

    # gists and notifications -------------------------------------------------------
    async def list_gists(self, args: dict[str, Any]) -> str:
        user = str(args.get("username") or "").strip()
        path = f"/users/{quote(user, safe='')}/gists" if user else "/gists"
        page, limit = await self._list(path, args, what=f"user {user}" if user else "gists")
        lines = [f"Gists of {user or 'the token account'}:"]
        for g in page.items:
            files = ", ".join(list((g.get("files") or {}).keys())[:5])
            lines.append(
                f"- {g.get('id')} {'public' if g.get('public') else 'secret'}: "
                f"{one_line(g.get('description'), 100) or '(no description)'} "
                f"[{files}] {g.get('html_url', '')}"
            )
        lines.append(_footer(page, "gists", limit))
        return _finish("\n".join(lines))

    async def create_gist(self, args: dict[str, Any]) -> str:
        payload = {
            "description": args.get("description") or "",
            "public": bool(args.get("public", False)),
            "files": {args["filename"]: {"content": args["content"]}},
        }
        g = await self.gh.request("POST", "/gists", json=payload, what="gists")
        kind = "public" if payload["public"] else "secret"
        return f"Created {kind} gist {args['filename']}: {g.get('html_url')}"

    async def list_notifications(self, args: dict[str, Any]) -> str:
        params = {"all": "true" if args.get("all") else "false"}
        page, limit = await self._list("/notifications", args, params=params, what="notifications")
        lines = ["GitHub notifications" + (" (all)" if args.get("all") else " (unread)") + ":"]
        for n in page.items:
            subject = n.get("subject") or {}
            lines.append(
                f"- {(n.get('repository') or {}).get('full_name')}: "
                f"{subject.get('type')} {one_line(subject.get('title'), 150)} "
                f"({n.get('reason')}, {day(n.get('updated_at'))})"
            )
        lines.append(_footer(page, "notifications", limit))
        return _finish("\n".join(lines))


#: The status line while a write runs: that it writes, and to what, on GitHub.
#: (Static: the status line cannot show the call's arguments; the result names
#: the repository and the URL of what was written.)
WRITE_ACTIVITY = {
    "github_create_issue": "writing to GitHub: opening an issue",
    "github_create_issue_comment": "writing to GitHub: posting a comment",
    "github_create_pull_request": "writing to GitHub: opening a pull request",
    "github_create_or_update_file": "writing to GitHub: committing a file",
    "github_run_workflow": "writing to GitHub: starting an Actions workflow",
    "github_create_gist": "writing to GitHub: creating a gist",
    "github_star_repository": "writing to GitHub: starring a repository",
}

#: Tools that write, for GITHUB_WRITE_ROLES and the descriptions.
WRITE_TOOLS = frozenset(WRITE_ACTIVITY)


def write_roles(setting: str) -> tuple[bool, frozenset[str]]:
    """GITHUB_WRITE_ROLES as (writes admin-only, roles that may write besides admins).

    Role names are casefolded like ``ToolContext.roles``; a role ID is its digits.
    """
    if setting == "everyone":
        return False, frozenset()
    if setting == "admins":
        return True, frozenset()
    return True, frozenset(r.strip().casefold() for r in setting.split(",") if r.strip())


def build_tools(
    gh: GitHubClient, *, writes_admin_only: bool = True, write_roles: frozenset[str] = frozenset()
) -> list[Tool]:
    t = GitHubTools(gh)
    num = {"type": "integer", "description": "The issue or pull request number."}
    state = {"type": "string", "enum": ["open", "closed", "all"], "description": "Default open."}
    specs: list[tuple[str, str, dict[str, Any], Handler]] = [
        (
            "github_get_me",
            "Get the GitHub profile of the account Clara's token belongs to.",
            _schema([]),
            t.get_me,
        ),
        (
            "github_search_users",
            "Search GitHub users (GitHub user search syntax).",
            _schema(["query"], query={"type": "string"}, limit=_LIMIT),
            t.search_users,
        ),
        (
            "github_search_repositories",
            "Search GitHub repositories (GitHub search syntax, e.g. 'fastapi language:python').",
            _schema(
                ["query"],
                query={"type": "string"},
                sort={"type": "string", "enum": ["stars", "forks", "updated"]},
                limit=_LIMIT,
            ),
            t.search_repositories,
        ),
        ("github_get_repository", "Get a repository's details.", _repo_schema(), t.get_repository),
        (
            "github_list_branches",
            "List a repository's branches.",
            _repo_schema(limit=_LIMIT),
            t.list_branches,
        ),
        ("github_list_tags", "List a repository's tags.", _repo_schema(limit=_LIMIT), t.list_tags),
        (
            "github_list_releases",
            "List a repository's releases.",
            _repo_schema(limit=_LIMIT),
            t.list_releases,
        ),
        (
            "github_list_stargazers",
            "List who starred a repository.",
            _repo_schema(limit=_LIMIT),
            t.list_stargazers,
        ),
        (
            "github_star_repository",
            "WRITES to GitHub: stars the repository owner/repo for Clara's GitHub account.",
            _repo_schema(),
            t.star_repository,
        ),
        (
            "github_list_issues",
            "List a repository's issues (pull requests left out).",
            _repo_schema(
                state=state,
                labels={"type": "string", "description": "Comma-separated label names."},
                limit=_LIMIT,
            ),
            t.list_issues,
        ),
        (
            "github_get_issue",
            "Get one issue with its description.",
            _repo_schema(["issue_number"], issue_number=num),
            t.get_issue,
        ),
        (
            "github_create_issue",
            "WRITES to GitHub: opens a new issue in owner/repo under Clara's account.",
            _repo_schema(
                ["title"],
                title={"type": "string"},
                body={"type": "string"},
                labels={"type": "array", "items": {"type": "string"}},
            ),
            t.create_issue,
        ),
        (
            "github_list_issue_comments",
            "List the comments on an issue or pull request.",
            _repo_schema(["issue_number"], issue_number=num, limit=_LIMIT),
            t.list_issue_comments,
        ),
        (
            "github_create_issue_comment",
            "WRITES to GitHub: posts a comment on issue/PR issue_number in owner/repo.",
            _repo_schema(["issue_number", "body"], issue_number=num, body={"type": "string"}),
            t.create_issue_comment,
        ),
        (
            "github_list_pull_requests",
            "List a repository's pull requests.",
            _repo_schema(state=state, limit=_LIMIT),
            t.list_pull_requests,
        ),
        (
            "github_get_pull_request",
            "Get one pull request with its description and size.",
            _repo_schema(["pull_number"], pull_number=num),
            t.get_pull_request,
        ),
        (
            "github_create_pull_request",
            "WRITES to GitHub: opens a pull request in owner/repo from branch head into base.",
            _repo_schema(
                ["title", "head", "base"],
                title={"type": "string"},
                head={"type": "string", "description": "Branch with the changes."},
                base={"type": "string", "description": "Branch to merge into."},
                body={"type": "string"},
                draft={"type": "boolean"},
            ),
            t.create_pull_request,
        ),
        (
            "github_list_commits",
            "List commits, newest first (optionally of a branch or path).",
            _repo_schema(
                sha={"type": "string", "description": "Branch or commit to start from."},
                path={"type": "string"},
                author={"type": "string"},
                limit=_LIMIT,
            ),
            t.list_commits,
        ),
        (
            "github_get_commit",
            "Get one commit: message, files changed, clipped diffs.",
            _repo_schema(["sha"], sha={"type": "string"}),
            t.get_commit,
        ),
        (
            "github_get_file_contents",
            "Read a file (or list a directory) in a repository.",
            _repo_schema(
                path={"type": "string", "description": "File or directory; empty: root."},
                ref={"type": "string", "description": "Branch, tag or commit."},
            ),
            t.get_file_contents,
        ),
        (
            "github_create_or_update_file",
            "WRITES to GitHub: commits the given content to path in owner/repo (on branch, or the "
            "default branch), creating or replacing the file.",
            _repo_schema(
                ["path", "content", "message"],
                path={"type": "string"},
                content={"type": "string", "description": "The whole new file text."},
                message={"type": "string", "description": "Commit message."},
                branch={"type": "string"},
                sha={"type": "string", "description": "Current blob sha, if known."},
            ),
            t.create_or_update_file,
        ),
        (
            "github_list_workflows",
            "List a repository's GitHub Actions workflows.",
            _repo_schema(limit=_LIMIT),
            t.list_workflows,
        ),
        (
            "github_list_workflow_runs",
            "List GitHub Actions runs (of one workflow, or all).",
            _repo_schema(
                workflow_id={"type": "string", "description": "Id or file name."},
                branch={"type": "string"},
                status={"type": "string"},
                limit=_LIMIT,
            ),
            t.list_workflow_runs,
        ),
        (
            "github_run_workflow",
            "WRITES to GitHub: starts (workflow_dispatch) workflow_id in owner/repo on ref.",
            _repo_schema(
                ["workflow_id", "ref"],
                workflow_id={"type": "string", "description": "Id or file name."},
                ref={"type": "string", "description": "Branch or tag."},
                inputs={"type": "object"},
            ),
            t.run_workflow,
        ),
        (
            "github_list_gists",
            "List gists of a user (default: Clara's account).",
            _schema([], username={"type": "string"}, limit=_LIMIT),
            t.list_gists,
        ),
        (
            "github_create_gist",
            "WRITES to GitHub: creates a gist (secret unless public=true) under Clara's account.",
            _schema(
                ["filename", "content"],
                filename={"type": "string"},
                content={"type": "string"},
                description={"type": "string"},
                public={"type": "boolean"},
            ),
            t.create_gist,
        ),
        (
            "github_list_notifications",
            "List the token account's GitHub notifications.",
            _schema([], all={"type": "boolean", "description": "Include read ones."}, limit=_LIMIT),
            t.list_notifications,
        ),
    ]
    tools = []
    for name, description, params, fn in specs:
        write = name in WRITE_TOOLS
        tools.append(
            Tool(
                name=name,
                description=description,
                parameters=params,
                handler=_adapt(fn),
                admin_only=write and writes_admin_only,
                roles=write_roles if write else frozenset(),
                timeout=TOOL_TIMEOUT,
                source="github",
                activity=WRITE_ACTIVITY.get(name, "reading GitHub"),
            )
        )
    return tools


def _adapt(fn: Handler) -> Callable[[dict[str, Any], ToolContext], Awaitable[str]]:
    async def handler(args: dict[str, Any], ctx: ToolContext) -> str:
        return await fn(args)

    return handler


def register_github_tools(registry: ToolRegistry, settings: Any) -> GitHubClient | None:
    """Offer the github_* tools when GITHUB_TOKEN is set; return the client to
    ``aclose()`` at shutdown (None when not offered)."""
    token = settings.github_token.get_secret_value().strip() if settings.github_token else ""
    if not token:
        log.info("GitHub tools not offered: GITHUB_TOKEN is not set")
        return None
    client = GitHubClient(token, base_url=settings.github_api_url)
    admin_only, roles = write_roles(settings.github_write_roles)
    for tool in build_tools(client, writes_admin_only=admin_only, write_roles=roles):
        registry.register(tool)
    return client
