"""The fake Tavily's wire: the JSON shape and errors the real API answers with."""

from __future__ import annotations

import httpx

from tests.fakes.fake_tavily import MESSAGES, FakeResult, FakeTavily


async def test_search_answers_in_tavilys_shape() -> None:
    async with FakeTavily(api_keys={"k"}) as fake, httpx.AsyncClient() as http:
        fake.add_results("q", [FakeResult("T", "https://t.example", "body", 0.5, "raw")])
        r = await http.post(
            f"{fake.base_url}/search",
            json={"query": "q", "include_raw_content": True, "include_answer": True},
            headers={"Authorization": "Bearer k"},
        )
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {
            "query",
            "follow_up_questions",
            "answer",
            "images",
            "results",
            "response_time",
            "request_id",
        }
        assert body["results"] == [
            {
                "url": "https://t.example",
                "title": "T",
                "content": "body",
                "score": 0.5,
                "raw_content": "raw",
            }
        ]
        assert isinstance(body["answer"], str) and isinstance(body["response_time"], float)
        # The legacy body key authenticates too; max_results is honoured.
        r = await http.post(f"{fake.base_url}/search", json={"query": "x", "api_key": "k"})
        assert len(r.json()["results"]) == 5 and r.json()["answer"] is None


async def test_errors_have_tavilys_status_and_body() -> None:
    async with FakeTavily(api_keys={"k"}) as fake, httpx.AsyncClient() as http:
        url, auth = f"{fake.base_url}/search", {"Authorization": "Bearer k"}
        r = await http.post(url, json={"query": "x"})
        assert (r.status_code, r.json()) == (401, {"detail": {"error": MESSAGES[401]}})
        fake.rate_limit()
        r = await http.post(url, json={"query": "x"}, headers=auth)
        assert (r.status_code, r.json()) == (429, {"detail": {"error": MESSAGES[429]}})
        for bad in ({"query": ""}, {"query": "x" * 401}, {"query": "x", "topic": "sports"}):
            r = await http.post(url, json=bad, headers=auth)
            assert r.status_code == 400 and r.json()["detail"]["error"], bad
        r = await http.post(url, json={"query": "x"}, headers=auth)
        assert r.status_code == 200
        assert len(fake.requests) == 6
