"""The github_* tools through the ToolRegistry, against the loopback fake GitHub
(real HTTP, GitHub's JSON, Link pagination, rate-limit headers, error bodies)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from clara_core.config import Settings
from clara_core.llm.types import ToolCall
from tests.fakes.fake_github import FakeGitHub, FakeRepo
from tools.github import WRITE_TOOLS, GitHubClient, register_github_tools
from tools.github.client import parse_reset
from tools.github.tools import MAX_LIMIT, RESULT_CHARS
from tools.registry import ToolContext, ToolRegistry, ToolResult

TOKEN = "ghp_test_token"
ADMIN = ToolContext("1", is_admin=True)
USER = ToolContext("2")

ALL_TOOLS = {
    "github_get_me", "github_search_repositories", "github_get_repository",
    "github_list_issues", "github_get_issue", "github_create_issue",
    "github_list_pull_requests", "github_get_pull_request", "github_create_pull_request",
    "github_list_commits", "github_get_commit", "github_get_file_contents",
    "github_create_or_update_file", "github_list_workflows", "github_list_workflow_runs",
    "github_run_workflow", "github_list_gists", "github_create_gist", "github_search_users",
    "github_list_branches", "github_list_releases", "github_list_tags",
    "github_list_notifications", "github_list_stargazers", "github_star_repository",
    "github_list_issue_comments", "github_create_issue_comment",
}  # fmt: skip


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
async def gh() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub(tokens={TOKEN: "octocat"}) as fake:
        fake.users["octocat"].update(name="The Octocat", public_repos=8, followers=42)
        yield fake


async def _registry(fake: FakeGitHub, **values: object) -> tuple[ToolRegistry, GitHubClient]:
    reg = ToolRegistry()
    values = {"github_token": TOKEN, "github_api_url": fake.base_url, **values}
    client = register_github_tools(reg, settings(**values))
    assert client is not None
    return reg, client


@pytest.fixture
async def reg(gh: FakeGitHub) -> AsyncIterator[ToolRegistry]:
    registry, client = await _registry(gh)
    yield registry
    await client.aclose()


async def call(
    registry: ToolRegistry, name: str, ctx: ToolContext = USER, **args: Any
) -> ToolResult:
    return await registry.call(ToolCall("c1", name, json.dumps(args)), ctx)


def listed(result: ToolResult, prefix: str = "- ") -> list[str]:
    return [line for line in result.content.splitlines() if line.startswith(prefix)]


# -- registration ------------------------------------------------------------------
async def test_offered_only_with_a_token_and_writes_admin_only(gh: FakeGitHub) -> None:
    for values in ({}, {"github_token": ""}, {"github_token": "  "}):
        r = ToolRegistry()
        assert register_github_tools(r, settings(**values)) is None and len(r) == 0
    registry, client = await _registry(gh)
    await client.aclose()
    names = {t.name for t in registry.available(ADMIN)}
    assert names == ALL_TOOLS
    assert WRITE_TOOLS < ALL_TOOLS
    # A non-admin is not offered the writes, and every write says so in its description.
    assert {t.name for t in registry.available(USER)} == ALL_TOOLS - WRITE_TOOLS
    for name in WRITE_TOOLS:
        tool = registry.get(name)
        assert tool is not None and tool.description.startswith("WRITES to GitHub")
        assert tool.activity is not None and tool.activity.startswith("writing to GitHub: ")


def test_write_roles_setting_is_validated() -> None:
    assert settings(github_write_roles=" Everyone ").github_write_roles == "everyone"
    assert settings(github_write_roles=" ADMINS ").github_write_roles == "admins"
    assert settings(github_write_roles="").github_write_roles == "admins"
    # Role names and IDs (admins may always write, so "admins" in a list adds nothing).
    roles = settings(github_write_roles=" Developers , 123456789012345678,admins")
    assert roles.github_write_roles == "Developers,123456789012345678"
    with pytest.raises(ValueError, match="github_write_roles"):
        settings(github_write_roles="everyone,Developers")
    assert settings(github_api_url="https://ghe.example.com/api/v3/").github_api_url == (
        "https://ghe.example.com/api/v3"
    )


# -- users, auth, headers -------------------------------------------------------------
async def test_get_me_sends_token_and_api_version(reg: ToolRegistry, gh: FakeGitHub) -> None:
    r = await call(reg, "github_get_me")
    assert not r.is_error, r.content
    assert r.content.splitlines()[0] == "Authenticated GitHub user: octocat"
    assert "Name: The Octocat" in r.content and "followers: 42" in r.content
    sent = gh.requests_to("/user")[-1]
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert sent.headers["Accept"] == "application/vnd.github+json"


async def test_fake_rejects_an_unsupported_api_version(gh: FakeGitHub) -> None:
    async with httpx.AsyncClient(base_url=gh.base_url) as http:
        resp = await http.get(
            "/user",
            headers={"Authorization": f"Bearer {TOKEN}", "X-GitHub-Api-Version": "2021-01-01"},
        )
    assert resp.status_code == 400 and "X-GitHub-Api-Version" in resp.json()["message"]


async def test_bad_token_names_github_token(gh: FakeGitHub) -> None:
    registry, client = await _registry(gh, github_token="ghp_wrong")
    try:
        r = await call(registry, "github_get_me")
    finally:
        await client.aclose()
    assert r.is_error
    assert "Bad credentials" in r.content and "GITHUB_TOKEN" in r.content
    assert "Traceback" not in r.content


async def test_search_users(reg: ToolRegistry, gh: FakeGitHub) -> None:
    gh.add_user("octo-dev")
    gh.add_user("someone")
    r = await call(reg, "github_search_users", query="octo")
    assert sorted(line.split()[1] for line in listed(r)) == ["octo-dev", "octocat"]
    assert "(2 of 2 users shown.)" in r.content


# -- pagination and trimming ------------------------------------------------------------
@pytest.fixture
def big_repo(gh: FakeGitHub) -> FakeRepo:
    repo = gh.add_repo("octocat", "big")
    repo.add_issues(350)
    return repo


async def test_list_follows_link_pages_up_to_the_cap(
    reg: ToolRegistry, gh: FakeGitHub, big_repo: FakeRepo
) -> None:
    # Default: one page of 30, and the model is told how to get more.
    r = await call(reg, "github_list_issues", owner="octocat", repo="big")
    assert len(listed(r, "- #")) == 30
    assert listed(r, "- #")[0].startswith("- #350 [open] Issue number 350 by octocat")
    assert "More exist: pass a larger limit" in r.content
    assert [q.query.get("per_page") for q in gh.requests_to("/repos/octocat/big/issues")] == ["30"]

    # A raised limit walks the Link rel="next" chain: 100 + 100 + 100, cut at 250.
    gh.requests.clear()
    r = await call(reg, "github_list_issues", owner="octocat", repo="big", limit=250)
    numbers = [int(line.split()[1][1:]) for line in listed(r, "- #")]
    assert numbers == list(range(350, 100, -1))
    pages = gh.requests_to("/repos/octocat/big/issues")
    assert [p.query.get("page") for p in pages] == [None, "2", "3"]
    assert all(p.query["per_page"] == "100" for p in pages)
    assert "(250 issues shown. More exist" in r.content

    # Above the cap: stops at MAX_LIMIT and says to narrow the query.
    gh.requests.clear()
    r = await call(reg, "github_list_issues", owner="octocat", repo="big", limit=5000)
    assert len(listed(r, "- #")) == MAX_LIMIT
    assert len(gh.requests_to("/repos/octocat/big/issues")) == 3
    assert f"beyond the {MAX_LIMIT} cap" in r.content


async def test_a_link_to_another_host_is_not_followed(
    reg: ToolRegistry, gh: FakeGitHub, big_repo: FakeRepo
) -> None:
    gh.link_base = "http://127.0.0.2:9"  # the token must not go there
    r = await call(reg, "github_list_issues", owner="octocat", repo="big", limit=250)
    assert not r.is_error and len(listed(r, "- #")) == 100
    assert len(gh.requests_to("/repos/octocat/big/issues")) == 1


async def test_results_are_trimmed(reg: ToolRegistry, gh: FakeGitHub, big_repo: FakeRepo) -> None:
    r = await call(reg, "github_list_issues", owner="octocat", repo="big", limit=100)
    raw = json.dumps(list(reversed(big_repo.issues))[:100])
    assert len(r.content) * 10 < len(raw), (len(r.content), len(raw))
    for noise in ("avatar_url", "node_id", "https://api.github.com", "reactions"):
        assert noise not in r.content

    huge = "Log line: something failed badly.\n" * 1200  # ~40 KB
    issue = big_repo.add_issue("Crash on start", huge, labels=["bug", "p1"])
    r = await call(reg, "github_get_issue", owner="octocat", repo="big",
                   issue_number=issue["number"])  # fmt: skip
    assert not r.is_error
    assert "Issue #351 in octocat/big: Crash on start" in r.content
    assert "[bug, p1]" in r.content
    assert len(r.content) < 3000 and "[clipped:" in r.content


async def test_issues_list_leaves_out_pull_requests(reg: ToolRegistry, gh: FakeGitHub) -> None:
    repo = gh.add_repo("octocat", "mixed", branches=["main", "feature"])
    repo.add_issue("A real issue")
    repo.add_pull("A pull request", "feature")
    r = await call(reg, "github_list_issues", owner="octocat", repo="mixed")
    assert [line.split("] ")[1].split(" by")[0] for line in listed(r, "- #")] == ["A real issue"]
    assert "1 pull requests left out" in r.content


# -- rate limits ---------------------------------------------------------------------
async def test_primary_limit_near_reset_is_waited_out(reg: ToolRegistry, gh: FakeGitHub) -> None:
    gh.exhaust(reset_in=1)
    t0 = time.monotonic()
    r = await call(reg, "github_get_me")
    assert not r.is_error, r.content
    assert "octocat" in r.content
    assert time.monotonic() - t0 >= 0.5
    # The first try was refused by GitHub, the retry after the reset answered.
    assert len(gh.requests_to("/user")) == 2


async def test_quota_spent_mid_listing_waits_for_the_reset(
    reg: ToolRegistry, gh: FakeGitHub, big_repo: FakeRepo
) -> None:
    gh.set_remaining(2, reset_in=1)  # enough for two of the three pages
    r = await call(reg, "github_list_issues", owner="octocat", repo="big", limit=300)
    assert not r.is_error, r.content
    assert len(listed(r, "- #")) == 300
    # The client saw Remaining: 0 on page two and waited instead of being refused.
    assert len(gh.requests_to("/repos/octocat/big/issues")) == 3


async def test_primary_limit_far_from_reset_is_refused_plainly(
    reg: ToolRegistry, gh: FakeGitHub
) -> None:
    gh.exhaust(reset_in=3600)
    r = await call(reg, "github_get_me")
    assert r.is_error and "hourly API limit" in r.content and "resets at" in r.content
    assert "min)" in r.content
    assert r.duration_s < 5
    # Known to be out of quota: the next call does not spend a request to learn it again.
    before = len(gh.requests)
    r = await call(reg, "github_get_repository", owner="octocat", repo="x")
    assert r.is_error and "hourly API limit" in r.content
    assert len(gh.requests) == before


@pytest.mark.parametrize("status", [403, 429])
async def test_secondary_limit_retry_after_is_honoured(
    reg: ToolRegistry, gh: FakeGitHub, status: int
) -> None:
    gh.secondary_limit(retry_after=1, status=status)
    t0 = time.monotonic()
    r = await call(reg, "github_get_me")
    assert not r.is_error, r.content
    assert time.monotonic() - t0 >= 0.9
    assert len(gh.requests_to("/user")) == 2


async def test_long_secondary_limit_is_refused(reg: ToolRegistry, gh: FakeGitHub) -> None:
    gh.secondary_limit(retry_after=600)
    r = await call(reg, "github_get_me")
    assert r.is_error and "secondary rate limit" in r.content and "10 min" in r.content
    assert len(gh.requests_to("/user")) == 1


def test_reset_header_parsing_tolerates_odd_formats() -> None:
    assert parse_reset("1767225600") == 1767225600.0
    assert parse_reset("1767225600.5") == 1767225600.5
    assert parse_reset("1767225600123") == pytest.approx(1767225600.123)  # milliseconds
    assert parse_reset("soon") is None and parse_reset(None) is None


# -- errors ------------------------------------------------------------------------------
async def test_not_found_forbidden_and_validation_messages(
    reg: ToolRegistry, gh: FakeGitHub
) -> None:
    r = await call(reg, "github_get_repository", owner="nobody", repo="nothing")
    assert r.is_error and "found no repository nobody/nothing" in r.content
    assert "private repository" in r.content

    gh.add_repo("octocat", "hello", branches=["main"])
    r = await call(reg, "github_get_issue", owner="octocat", repo="hello", issue_number=7)
    assert r.is_error and "found no issue #7 in octocat/hello" in r.content

    r = await call(reg, "github_create_issue", ADMIN, owner="octocat", repo="hello", title=" ")
    assert r.is_error and "Validation Failed (title missing_field)" in r.content
    assert "Fix the arguments" in r.content

    r = await call(reg, "github_create_pull_request", ADMIN, owner="octocat", repo="hello",
                   title="x", head="nope", base="main")  # fmt: skip
    assert r.is_error and "head invalid" in r.content

    gh.fail_next(403, "Resource not accessible by personal access token")
    r = await call(reg, "github_get_repository", owner="octocat", repo="hello")
    assert r.is_error and "Resource not accessible" in r.content and "permission" in r.content

    gh.fail_next(502, "Server Error")
    r = await call(reg, "github_get_repository", owner="octocat", repo="hello")
    assert r.is_error and "HTTP 502" in r.content and "try again later" in r.content


async def test_unreachable_github_is_explained() -> None:
    reg = ToolRegistry()
    client = register_github_tools(
        reg, settings(github_token=TOKEN, github_api_url="http://127.0.0.1:9")
    )
    assert client is not None
    try:
        r = await call(reg, "github_get_me")
    finally:
        await client.aclose()
    assert r.is_error and "could not reach GitHub at http://127.0.0.1:9" in r.content


# -- permissions ---------------------------------------------------------------------------
async def test_a_non_admins_write_is_refused_by_the_registry(
    reg: ToolRegistry, gh: FakeGitHub
) -> None:
    repo = gh.add_repo("octocat", "hello")
    r = await call(reg, "github_create_issue", USER, owner="octocat", repo="hello", title="Hi")
    assert r.is_error and "restricted to server admins" in r.content
    assert not any(q.method == "POST" for q in gh.requests) and repo.issues == []


async def test_write_roles_by_role_name_or_id_open_writes_to_those_members_only(
    gh: FakeGitHub,
) -> None:
    repo = gh.add_repo("octocat", "hello")
    registry, client = await _registry(gh, github_write_roles="Developers,555000111")
    # ToolContext.roles as the Discord adapter fills them: casefolded names and IDs.
    dev = ToolContext("3", roles=frozenset({"developers", "901"}))
    by_id = ToolContext("4", roles=frozenset({"guests", "555000111"}))
    other = ToolContext("5", roles=frozenset({"guests", "902"}))
    try:
        for member in (dev, by_id):
            assert {t.name for t in registry.available(member)} == ALL_TOOLS
        assert {t.name for t in registry.available(other)} == ALL_TOOLS - WRITE_TOOLS
        assert {t.name for t in registry.available(ADMIN)} == ALL_TOOLS  # admins still may
        ok = await call(registry, "github_create_issue", dev, owner="octocat", repo="hello",
                        title="By role name")  # fmt: skip
        ok2 = await call(registry, "github_create_issue", by_id, owner="octocat", repo="hello",
                         title="By role id")  # fmt: skip
        refused = await call(registry, "github_create_issue", other, owner="octocat",
                             repo="hello", title="No role")  # fmt: skip
    finally:
        await client.aclose()
    assert not ok.is_error and not ok2.is_error, (ok.content, ok2.content)
    assert refused.is_error and "restricted to server admins and members with certain roles" in (
        refused.content
    )
    assert [i["title"] for i in repo.issues] == ["By role name", "By role id"]


async def test_write_roles_everyone_lets_anyone_write(gh: FakeGitHub) -> None:
    repo = gh.add_repo("octocat", "hello")
    registry, client = await _registry(gh, github_write_roles="everyone")
    try:
        assert {t.name for t in registry.available(USER)} == ALL_TOOLS
        r = await call(registry, "github_create_issue", USER, owner="octocat", repo="hello",
                       title="From a member", body="Hello")  # fmt: skip
    finally:
        await client.aclose()
    assert not r.is_error, r.content
    assert r.content == (
        "Created issue #1 in octocat/hello: https://github.com/octocat/hello/issues/1"
    )
    assert repo.issues[0]["title"] == "From a member"


# -- each family ---------------------------------------------------------------------------
async def test_repository_tools(reg: ToolRegistry, gh: FakeGitHub) -> None:
    repo = gh.add_repo("octocat", "clara", description="A companion bot",
                       branches=["main", "dev"], tags=["v1.0", "v1.1"],
                       stargazers=["alice", "bob"])  # fmt: skip
    repo.releases.append({"tag_name": "v1.1", "name": "Spring", "draft": False,
                          "prerelease": True, "published_at": "2026-03-01T00:00:00Z",
                          "html_url": "https://github.com/octocat/clara/releases/v1.1",
                          "body": "Fixes.\n\nMore fixes."})  # fmt: skip
    gh.add_repo("someone", "other", description="unrelated")

    r = await call(reg, "github_search_repositories", query="companion")
    assert listed(r) == ["- octocat/clara ★2, Python, updated 2026-01-02 — A companion bot"]
    r = await call(reg, "github_get_repository", owner="octocat", repo="clara")
    assert r.content.startswith("octocat/clara (public)")
    assert "Default branch: main" in r.content and "License: MIT" in r.content
    # repo="owner/name" (a common slip) is understood too.
    r2 = await call(reg, "github_get_repository", owner="octocat", repo="octocat/clara")
    assert r2.content == r.content
    r = await call(reg, "github_list_branches", owner="octocat", repo="clara")
    assert [line.split()[1] for line in listed(r)] == ["main", "dev"]
    assert "(protected)" in listed(r)[0]
    r = await call(reg, "github_list_tags", owner="octocat", repo="clara")
    assert [line.split()[1] for line in listed(r)] == ["v1.0", "v1.1"]
    r = await call(reg, "github_list_releases", owner="octocat", repo="clara")
    assert "- v1.1: Spring (pre-release), published 2026-03-01" in r.content
    r = await call(reg, "github_list_stargazers", owner="octocat", repo="clara")
    assert listed(r) == ["- alice", "- bob"]
    r = await call(reg, "github_star_repository", ADMIN, owner="octocat", repo="clara")
    assert not r.is_error and "Starred octocat/clara" in r.content
    assert ("octocat", "octocat/clara") in gh.starred


async def test_issue_and_comment_tools(reg: ToolRegistry, gh: FakeGitHub) -> None:
    repo = gh.add_repo("octocat", "hello")
    r = await call(reg, "github_create_issue", ADMIN, owner="octocat", repo="hello",
                   title="Docs typo", body="In README", labels=["docs"])  # fmt: skip
    assert r.content.startswith("Created issue #1 in octocat/hello")
    assert repo.issues[0]["labels"][0]["name"] == "docs"
    r = await call(reg, "github_create_issue_comment", ADMIN, owner="octocat", repo="hello",
                   issue_number=1, body="Fixed in main.")  # fmt: skip
    assert r.content.startswith("Commented on #1 in octocat/hello: https://github.com/")
    r = await call(reg, "github_list_issue_comments", owner="octocat", repo="hello",
                   issue_number=1)  # fmt: skip
    assert listed(r) == ["- octocat on 2026-01-02: Fixed in main."]
    r = await call(reg, "github_get_issue", owner="octocat", repo="hello", issue_number=1)
    assert "State: open [docs]" in r.content and "1 comments" in r.content
    assert r.content.endswith("In README")


async def test_pull_request_tools(reg: ToolRegistry, gh: FakeGitHub) -> None:
    repo = gh.add_repo("octocat", "hello", branches=["main", "fix"])
    r = await call(reg, "github_create_pull_request", ADMIN, owner="octocat", repo="hello",
                   title="Fix it", head="fix", base="main", body="Closes #1")  # fmt: skip
    assert r.content == (
        "Opened pull request #1 in octocat/hello (fix → main): "
        "https://github.com/octocat/hello/pull/1"
    )
    r = await call(reg, "github_list_pull_requests", owner="octocat", repo="hello")
    assert listed(r, "- #")[0].startswith("- #1 [open] Fix it fix → main by octocat")
    r = await call(reg, "github_get_pull_request", owner="octocat", repo="hello", pull_number=1)
    assert "octocat:fix → main" in r.content and "+10 -2" in r.content
    assert "Closes #1" in r.content
    assert 1 in repo.pulls


async def test_commit_tools(reg: ToolRegistry, gh: FakeGitHub) -> None:
    repo = gh.add_repo("octocat", "hello")
    repo.add_commit("First commit")
    patch = "@@ -1 +1 @@\n" + "+added line\n" * 2000
    c = repo.add_commit("Big change\n\nWith details.", files=[
        {"filename": "a.py", "status": "modified", "additions": 2000, "deletions": 1,
         "patch": patch}])  # fmt: skip
    r = await call(reg, "github_list_commits", owner="octocat", repo="hello")
    assert [line.split(": ", 1)[1] for line in listed(r)] == ["Big change With details.",
                                                              "First commit"]  # fmt: skip
    r = await call(reg, "github_get_commit", owner="octocat", repo="hello", sha=c["sha"][:7])
    assert f"Commit {c['sha']}" in r.content and "modified a.py (+2000 -1)" in r.content
    assert "[clipped:" in r.content and len(r.content) < 3000


async def test_file_tools(reg: ToolRegistry, gh: FakeGitHub) -> None:
    repo = gh.add_repo("octocat", "hello")
    repo.files.update({"README.md": "# Hello\nWorld\n", "src/app.py": "print('hi')\n"})
    r = await call(reg, "github_get_file_contents", owner="octocat", repo="hello",
                   path="README.md")  # fmt: skip
    assert r.content.splitlines()[1:] == ["# Hello", "World"]
    r = await call(reg, "github_get_file_contents", owner="octocat", repo="hello")
    assert listed(r) == ["- README.md (14 B)", "- src/"]
    # Create, then update without giving the sha: the tool finds it.
    r = await call(reg, "github_create_or_update_file", ADMIN, owner="octocat", repo="hello",
                   path="docs/new.md", content="v1", message="Add docs")  # fmt: skip
    assert r.content.startswith("Created docs/new.md in octocat/hello (commit ")
    r = await call(reg, "github_create_or_update_file", ADMIN, owner="octocat", repo="hello",
                   path="docs/new.md", content="v2", message="Update docs")  # fmt: skip
    assert r.content.startswith("Updated docs/new.md in octocat/hello"), r.content
    assert repo.files["docs/new.md"] == "v2"
    put = [q for q in gh.requests if q.method == "PUT"][-1]
    assert base64.b64decode(put.body["content"]) == b"v2" and put.body["sha"]


async def test_actions_tools(reg: ToolRegistry, gh: FakeGitHub) -> None:
    repo = gh.add_repo("octocat", "hello")
    ci = repo.add_workflow("CI", ".github/workflows/ci.yml")
    repo.add_run(ci, conclusion="failure")
    r = await call(reg, "github_list_workflows", owner="octocat", repo="hello")
    assert listed(r) == [f"- {ci['id']} CI (.github/workflows/ci.yml) [active]"]
    r = await call(reg, "github_run_workflow", ADMIN, owner="octocat", repo="hello",
                   workflow_id="ci.yml", ref="main", inputs={"level": "full"})  # fmt: skip
    assert r.content.startswith("Started workflow ci.yml in octocat/hello on main")
    assert repo.dispatches == [{"workflow": ci["id"], "ref": "main", "inputs": {"level": "full"}}]
    r = await call(reg, "github_list_workflow_runs", owner="octocat", repo="hello",
                   workflow_id="ci.yml")  # fmt: skip
    runs = listed(r)
    assert len(runs) == 2 and ": queued on main" in runs[0] and "completed/failure" in runs[1]


async def test_gist_and_notification_tools(reg: ToolRegistry, gh: FakeGitHub) -> None:
    r = await call(reg, "github_create_gist", ADMIN, filename="notes.md", content="# Notes",
                   description="My notes")  # fmt: skip
    assert r.content.startswith("Created secret gist notes.md: https://gist.github.com/")
    r = await call(reg, "github_list_gists")
    assert len(listed(r)) == 1 and "secret: My notes [notes.md]" in r.content
    gh.notifications.append({
        "id": "1", "unread": True, "reason": "mention", "updated_at": "2026-02-02T00:00:00Z",
        "subject": {"title": "Please review", "type": "PullRequest"},
        "repository": {"full_name": "octocat/hello"}})  # fmt: skip
    r = await call(reg, "github_list_notifications")
    assert listed(r) == ["- octocat/hello: PullRequest Please review (mention, 2026-02-02)"]


async def test_a_long_listing_is_cut_at_whole_lines_and_keeps_its_footer(
    reg: ToolRegistry, gh: FakeGitHub
) -> None:
    repo = gh.add_repo("octocat", "busy")
    for k in range(MAX_LIMIT):
        repo.add_commit(f"Commit {k}: " + "a fairly long commit subject line " * 5)
    r = await call(reg, "github_list_commits", owner="octocat", repo="busy", limit=MAX_LIMIT)
    assert not r.is_error
    assert len(r.content) <= RESULT_CHARS
    lines = r.content.splitlines()
    assert lines[-1] == f"({MAX_LIMIT} commits shown.)"
    assert re.fullmatch(r"\(\d+ more lines not shown to keep this short\.\)", lines[-2])
    assert all(line.endswith("…") or "subject line" in line for line in listed(r))
