"""`/console` over HTTP: a real `thrifty serve`, numbers from the store, sessions and roles.

The browser's view of the same pages is in test_browser.py.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from console.known import Gateway, config
from console.numbers import check_overview, row_counts, text
from fakes.upstream import FakeUpstream
from support import ThriftyServer
from thrifty.stats import wilson_interval
from thrifty.store.console import split_reason

PAGES = ("", "/routing", "/models", "/tenants", "/evals", "/privacy", "/autopilot")


def _login(gateway: Gateway, secret: str, **headers: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/console/login", data={"api_key": secret}, headers=headers, timeout=30
    )


def _session(gateway: Gateway, who: str) -> dict[str, str]:
    return {"thrifty_console": _login(gateway, gateway.secrets[who]).cookies["thrifty_console"]}


def _get(gateway: Gateway, path: str, cookies: dict[str, str], **headers: str) -> str:
    response = httpx.get(gateway.url + path, cookies=cookies, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def test_no_page_without_a_key(gateway: Gateway) -> None:
    for path in PAGES:
        for query in ("", "?lang=zh"):
            response = httpx.get(gateway.url + "/console" + path + query, timeout=30)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/console/login")
        fragment = httpx.get(
            gateway.url + "/console" + path, headers={"x-console-fragment": "1"}, timeout=30
        )
        assert fragment.status_code == 303
    assert httpx.get(gateway.url + "/console/static/console.js").status_code == 401
    forged = {"thrifty_console": "key_x.9999999999.ab"}
    assert httpx.get(gateway.url + "/console", cookies=forged).status_code == 303
    assert _login(gateway, "sk-wrong").status_code == 401


def test_login_cookie_and_tenants(gateway: Gateway) -> None:
    response = _login(gateway, gateway.secrets["admin"])
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/console"} <= flags
    assert gateway.secrets["admin"] not in cookie  # the session names the key, never its secret
    session = {"thrifty_console": response.cookies["thrifty_console"]}
    page = _get(gateway, "/console?since=1d", session)
    assert text(page, "tenant") == "all tenants"
    check_overview(page, gateway.rows())
    viewer = _session(gateway, "viewer")
    page = _get(gateway, "/console?since=1d", viewer)
    assert text(page, "tenant") == "beta"  # a viewer sees its own tenant only
    check_overview(page, gateway.rows("beta"))
    value = session["thrifty_console"]
    tampered = {"thrifty_console": value.replace(value.split(".")[0], "key_other")}
    assert httpx.get(gateway.url + "/console", cookies=tampered).status_code == 303


def test_routing_page_matches_the_store(gateway: Gateway) -> None:
    page = _get(gateway, "/console/routing?since=1d", _session(gateway, "admin"))
    rows = gateway.rows()
    assert row_counts(page, "decisions", "data-route") == Counter(r["route"] for r in rows)
    rules = Counter(split_reason(r["reason"])[0] for r in rows)
    assert row_counts(page, "decisions", "data-rule") == rules
    assert "rule:triage" in rules  # the cascade's rule, and its escalation to the cloud
    escalations = page.split("id=escalations", 1)[1].split("</table>", 1)[0]
    assert "<td>local</td><td>labels</td><td>deepseek-chat</td><td>1</td>" in escalations
    shadows = page.split("id=shadows", 1)[1].split("</table>", 1)[0]
    assert "data-target='local'><td>local</td><td>2</td><td>1</td><td>50.0%</td>" in shadows
    assert len(re.findall(r"<circle class=point", page)) == 3  # the stored sweep's points
    assert text(page, "apgr") == "0.712"


def test_pages_of_a_viewer_hold_its_tenant_only(gateway: Gateway) -> None:
    viewer = _session(gateway, "viewer")
    beta = gateway.rows("beta")
    routing = _get(gateway, "/console/routing?since=1d", viewer)
    assert row_counts(routing, "decisions", "data-route") == Counter(r["route"] for r in beta)
    tenants = _get(gateway, "/console/tenants?since=1d", viewer)
    assert "data-tenant='acme'" not in tenants and "data-tenant='beta'" in tenants
    tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in beta)
    row = tenants.split("data-tenant='beta'>", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert cells[:3] == ["beta", str(len(beta)), str(tokens)]
    assert cells[4] == f"{100000 - tokens} / 100000"  # the tenant's daily tokens left
    privacy = _get(gateway, "/console/privacy?since=1d", viewer)
    assert "id=queue-admins" in privacy and "id=review" not in privacy  # no excerpts
    evals = _get(gateway, "/console/evals?since=1d", viewer)
    assert "id=ab-admins" in evals


def test_privacy_counts_kinds_never_the_data(gateway: Gateway) -> None:
    page = _get(gateway, "/console/privacy?since=1d", _session(gateway, "admin"))
    rows = gateway.rows()
    carrying = [r for r in rows if r["pii"]]
    assert carrying and int(text(page, "with-pii")) == len(carrying)
    want = Counter(kind for r in carrying for kind in r["pii"].split(","))
    assert row_counts(page, "pii", "data-kind") == want
    assert "alice.liddell" not in page and "example.com" not in page


def test_models_page_shows_engines_and_breakers(gateway: Gateway) -> None:
    page = _get(gateway, "/console/models?since=1d", _session(gateway, "admin"))
    assert re.search(r"data-model='[^']+' data-state='loaded'", page)
    assert "data-upstream='deepseek' data-breaker='closed'" in page
    local = [r for r in gateway.rows() if r["route"] == "local" and r["status"] == 200]
    speed = page.split("id=speed", 1)[1].split("</table>", 1)[0]
    tokens = sum(r["completion_tokens"] for r in local)
    assert f"<td>{len(local)}</td><td>{tokens}</td>" in speed


def test_review_needs_an_admin_and_a_token(gateway: Gateway) -> None:
    admin = _session(gateway, "admin")
    deadline = 50
    page = _get(gateway, "/console/privacy", admin)
    while "data-item=" not in page and deadline:  # the queue is written off the event loop
        deadline -= 1
        gateway.server.wait_rows("1=0", timeout=0.1)
        page = _get(gateway, "/console/privacy", admin)
    item = re.findall(r"data-item=(\d+)", page)[-1]
    token = re.search(r"name=csrf value='([0-9a-f]+)'", page)
    assert token
    url = f"{gateway.url}/console/review/{item}"
    viewer = _session(gateway, "viewer")
    viewer_page = _get(gateway, "/console", viewer)
    viewer_token = re.search(r"name=csrf value='([0-9a-f]+)'", viewer_page)
    assert viewer_token  # its own session's token (the logout form's): still not an admin
    refused = httpx.post(url, cookies=viewer, data={"verdict": "ok", "csrf": viewer_token[1]})
    assert refused.status_code == 403
    assert httpx.post(url, cookies=admin, data={"verdict": "ok"}).status_code == 403
    stolen = httpx.post(url, cookies=admin, data={"verdict": "ok", "csrf": viewer_token[1]})
    assert stolen.status_code == 403  # a token belongs to its session
    cross = httpx.post(
        url,
        cookies=admin,
        data={"verdict": "ok", "csrf": token[1]},
        headers={"origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    assert f"data-item={item}" in _get(gateway, "/console/privacy", admin)  # still pending
    done = httpx.post(url, cookies=admin, data={"verdict": "bad", "csrf": token[1]})
    assert done.status_code == 303
    assert f"data-item={item}" not in _get(gateway, "/console/privacy", admin)


def test_fragment_is_the_body_alone(gateway: Gateway) -> None:
    admin = _session(gateway, "admin")
    whole = _get(gateway, "/console/routing?since=1d", admin)
    part = _get(gateway, "/console/routing?since=1d", admin, **{"x-console-fragment": "1"})
    assert "<html" not in part and "id=decisions" in part and part in whole
    script = httpx.get(gateway.url + "/console/static/console.js", cookies=admin)
    assert script.status_code == 200 and "x-console-fragment" in script.text


def test_evals_and_ab_with_intervals(gateway: Gateway) -> None:
    page = _get(gateway, "/console/evals?since=1d", _session(gateway, "admin"))
    low, high = wilson_interval(7, 10) or (0, 1)
    run = page.split("data-run='faq-local' data-n=10>", 1)[1].split("</tr>", 1)[0]
    assert f"<span class=score>70.0% [{low:.1%}, {high:.1%}]</span>" in run
    assert "data-label='faq × local' data-value=0.700000" in page  # the interval chart's dot
    variants = Counter(r["variant"] for r in gateway.rows() if r["variant"])
    shown = row_counts(page, "ab-chat-ab", "data-variant")
    assert {f"chat-ab:{v}": n for v, n in shown.items() if n} == variants
    assert sum(variants.values()) == 4


def test_autopilot_runs_and_steps(gateway: Gateway) -> None:
    page = _get(gateway, "/console/autopilot", _session(gateway, "admin"))
    assert "data-run='ap-beta' data-status='promoted'" in page
    assert "data-run='ap-all' data-status='waiting'" in page
    steps = page.split("id=steps-ap-beta", 1)[1].split("</table>", 1)[0]
    assert steps.count("data-status='done'") == 3 and "accuracy=0.91" in steps
    run = page.split("data-run='ap-beta' data-status='promoted'>", 1)[1].split("</tr>", 1)[0]
    assert "<td>student-ap-beta</td><td>promote</td>" in run and "<td>$0.035</td>" in run
    viewer = _get(gateway, "/console/autopilot", _session(gateway, "viewer"))
    assert "data-run='ap-beta'" in viewer and "data-run='ap-all'" not in viewer


def test_cross_site_posts_are_refused(gateway: Gateway) -> None:
    admin = gateway.secrets["admin"]
    assert _login(gateway, admin, origin="http://evil.example").status_code == 403
    assert _login(gateway, admin, **{"sec-fetch-site": "cross-site"}).status_code == 403
    session = _session(gateway, "admin")
    logout = httpx.post(
        gateway.url + "/console/logout", cookies=session, headers={"origin": "http://evil.example"}
    )
    assert logout.status_code == 403
    same_site = httpx.post(
        gateway.url + "/console/logout", cookies=session, headers={"origin": gateway.url}
    )
    assert same_site.status_code == 303
    assert "thrifty_console=" in same_site.headers["set-cookie"]  # cleared


@pytest.fixture(scope="module")
def open_gateway(
    fake_local: FakeUpstream, fake_cloud: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThriftyServer]:
    """No keys, loopback: the console answers without a login, as the API does."""
    words = tmp_path_factory.mktemp("open") / "watch.txt"
    words.write_text("# action: flag\nsecret plan\n", encoding="utf-8")
    with ThriftyServer(config=config(fake_local, fake_cloud, words)) as server:
        for text_ in ("echo:one", "echo:两个"):
            body = {"model": "local", "messages": [{"role": "user", "content": text_}]}
            assert httpx.post(server.base_url + "/chat/completions", json=body).status_code == 200
        yield server


def test_keyless_console_answers_without_a_login(open_gateway: ThriftyServer) -> None:
    rows = open_gateway.wait_rows("1=1")
    while len(rows) < 2:
        rows = open_gateway.wait_rows("1=1")
    for path in PAGES:
        response = httpx.get(open_gateway.url + "/console" + path + "?since=1d", timeout=30)
        assert response.status_code == 200, path
        assert "Log out" not in response.text  # no session to end
    check_overview(httpx.get(open_gateway.url + "/console?since=1d").text, rows)
