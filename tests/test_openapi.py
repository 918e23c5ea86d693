"""The OpenAPI document: valid, in step with the route table, and true to the app under a fuzzer.

The fuzz run drives schemathesis from inside one test per backend. Every documented operation
gets generated requests, valid and invalid ones, sent with a real token and aimed at seeded
IDs; every answer must match the document and Copernica's error contract.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from starlette.routing import Route
from starlette.testclient import TestClient

from mailstats.ingest import REPORTED
from mailstats.kinds import KINDS
from mailstats.web import openapi
from mailstats.web.app import ROUTES, App
from tests.helpers import (
    JSON,
    PIXEL,
    REPORTS,
    body_html,
    click_paths,
    mailing,
    message_key,
    report_with_key,
)

METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
TRACKING = ("/c/", "/o/", "/u/")
UNSUBSCRIBE = re.compile(r"<http://t\.test(/u/[A-Za-z0-9_-]+)>")
# Examples per operation and generation mode. Generating a request costs far more than
# serving it (some 40 ms against 5), so these bound the run; MAILSTATS_FUZZ_SCALE=10 digs deeper.
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
ALIAS_EXAMPLES = 3
SCALE = float(os.environ.get("MAILSTATS_FUZZ_SCALE", "1"))

# --- the document ---------------------------------------------------------------------------


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in METHODS}


def dispatched_to(method: str, path: str) -> int:
    """The index of the route Starlette picks for a documented operation."""
    concrete = path.replace("{id}", "1")
    for index, route in enumerate(ROUTES):
        if route.path_regex.fullmatch(concrete) and method in (route.methods or ()):
            return index
    raise AssertionError(f"{method} {path} is documented but no route serves it")


def expected_paths(route: Route, method: str) -> set[str]:
    """How a route should be documented: {kind} and {part} spelled out."""
    paths = {route.path}
    if "{kind}" in route.path:
        kinds = REPORTED if method == "POST" else tuple(KINDS)
        paths = {route.path.replace("{kind}", kind) for kind in kinds}
    if "{chart}" in route.path:
        paths = {
            route.path.replace("{chart}", c) for c in ("timeline", "links", "clients", "bounces")
        }
    if "{part}" in route.path:
        paths = {p.replace("{part}", part) for p in paths for part in openapi.PARTS}
    return paths


def test_document_is_served_as_json_and_loads(http: TestClient) -> None:
    r = http.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON
    doc = r.json()
    assert doc == openapi.build(ROUTES)
    assert doc["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(doc)
    labels = {r.ok().label for r in schema.get_all_operations() if isinstance(r, Ok)}
    assert labels == {f"{method} {path}" for method, path in operations(doc)}


def test_every_route_is_documented_and_nothing_else() -> None:
    doc = openapi.build(ROUTES)
    api = {(m, p) for m, p in operations(doc) if not p.startswith(TRACKING)}
    served: dict[tuple[int, str], set[str]] = {}
    for method, path in api:
        served.setdefault((dispatched_to(method, path), method), set()).add(path)
    for index, route in enumerate(ROUTES):
        for method in (route.methods or set()) - {"HEAD"}:
            documented = served.pop((index, method), set())
            assert documented == expected_paths(route, method), (method, route.path)
    assert not served
    assert operations(doc) - api == {
        ("GET", "/c/{token}"), ("HEAD", "/c/{token}"), ("GET", "/o/{token}"),
        ("HEAD", "/o/{token}"), ("GET", "/u/{token}"), ("HEAD", "/u/{token}"),
        ("POST", "/u/{token}"),
    }  # fmt: skip


def test_list_items_have_the_fields_of_their_kind_in_order() -> None:
    schemas = openapi.build(ROUTES)["components"]["schemas"]
    for name, kind in KINDS.items():
        item = schemas[f"{name.title()}Item"]
        assert item["required"] == list(kind.fields)  # Copernica's, always
        # and those extended=true adds (an error's reason, a click's verdict...) may follow
        assert list(item["properties"]) == list(kind.extended().fields)


def test_time_pattern_accepts_real_dates_only() -> None:
    pattern = re.compile(openapi.TIME_IN["pattern"])
    good = ["2024-02-29 10:00:00", "2000-02-29", " 2023-12-31T23:59:59 ", "1970-01-01"]
    bad = ["2023-02-29", "1900-02-29", "2024-02-30 10:00:00", "9999-99-99", "0001-01-01",
           "2024-01-01 24:00:00", "2024-1-1", "", "２０２４-01-01"]  # fmt: skip
    assert [bool(pattern.search(v)) for v in good] == [True] * len(good)
    assert [bool(pattern.search(v)) for v in bad] == [False] * len(bad)


# --- the fuzz run ---------------------------------------------------------------------------

REPORT_FILES = sorted(p.relative_to(REPORTS).as_posix() for p in REPORTS.rglob("*.eml"))


WEBHOOK = 7_340_021  # the seeded webhook endpoint's ID


@dataclass
class Seed:
    """What exists before the run: the token, IDs to aim at, tracking tokens, a message key."""

    token: str
    emailing: int
    destination: int
    tracking: dict[str, str]  # "c", "o", "u" -> a real token
    key: str  # the destination's message key, which bounce and complaint reports name
    webhook: int = WEBHOOK  # an endpoint; a DELETE of it is never aimed (it would be gone)

    def aimed(self, case: Case[Any]) -> bool:
        """Whether the case names what exists, so that a valid request must succeed."""
        params = case.path_parameters or {}
        query = case.query or {}
        if "begin" in query or "end" in query:
            return False  # a chart range's days may be valid one by one, not together
        if case.path.startswith("/v2/ms/webhook/"):
            return case.method.upper() != "DELETE" and params.get("id") == str(self.webhook)
        if "id" in params:
            return params["id"] in (str(self.emailing), str(self.destination))
        if "token" in params:
            return params["token"] in self.tracking.values()
        # An address is on the suppression list only until a DELETE takes it off: never aimed.
        return "email" not in params


def seed(app: App, http: TestClient, token: str) -> Seed:
    """An emailing, two destinations, and events of every kind, reported ones both ways."""
    m = mailing(app, http, token)
    d = m.destinations[0]
    auth = {"access_token": token}
    headers = http.get(f"/v2/ms/destination/{d}/headers", params=auth).json()
    paths = {
        "c": click_paths(http, token, d)[0],
        "o": PIXEL.findall(body_html(http, token, d))[0],
        "u": UNSUBSCRIBE.findall(headers["List-Unsubscribe"])[0],
    }
    assert http.get(paths["c"]).status_code == 302
    assert http.get(paths["o"]).status_code == 200
    assert http.post(paths["u"]).status_code == 200
    reported = {
        "deliveries": {"attempts": 2},
        "errors": {"status": "5.1.1", "errorcode": "550", "description": "No such user",
                   "errortype": "hard"},
        "abuses": {"report": {"feedback-type": "abuse"}},
    }  # fmt: skip
    for kind, body in reported.items():
        r = http.post(f"/v2/ms/destination/{d}/{kind}", params=auth, json=body)
        assert r.status_code == 201, r.text
    key = message_key(app, d)
    for name in ("dsn/postfix_user_unknown.eml", "arf/gmail_fbl.eml"):
        raw = report_with_key(name, key)
        r = http.post("/v2/ms/reports", params=auth, content=raw,
                      headers={"content-type": "message/rfc822"})  # fmt: skip
        assert r.status_code == 201, r.text
    account = app.store.account("acme").id
    made, _ = app.store.webhooks.create(
        account, "https://hooks.example.com/", ["clicks"], "include"
    )
    with app.store.backend.transaction() as cur:  # an ID that generated ones hardly name
        cur.execute(f"UPDATE webhooks SET id = {WEBHOOK} WHERE id = {made}")
    return Seed(token, m.id, d, {k: v[3:] for k, v in paths.items()}, key)


def ndjson_bodies() -> st.SearchStrategy[bytes]:
    """Bulk bodies: events for small destination IDs (some exist), with junk among them."""
    event = st.fixed_dictionaries(
        {"kind": st.sampled_from([*REPORTED, "clicks", ""]), "destination": st.integers(0, 4)},
        optional={
            "timestamp": st.sampled_from(["2024-07-01 10:00:00", "2024-02-30 10:00:00", ""]),
            "attempts": st.integers(-1, 3),
            "status": st.text(max_size=40),
            "report": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
            "key": st.text(max_size=10),
        },
    )
    line = st.one_of(event.map(orjson.dumps), st.binary(max_size=40))
    return st.lists(line, max_size=4).map(b"\n".join)


# Bodies schemathesis cannot derive from a schema, registered once for the whole process.
schemathesis.openapi.media_type("application/x-ndjson", ndjson_bodies())
schemathesis.openapi.media_type("message/rfc822", st.binary(max_size=2000))


def cases(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, s: Seed
) -> st.SearchStrategy[Case[Any]]:
    """Generated cases; some aimed at the seeded IDs or tokens, some carrying real reports."""
    free = operation.as_strategy(generation_mode=mode)
    aimed: dict[str, str] = {}
    if operation.path.startswith("/v2/ms/webhook/"):
        if operation.method.upper() != "DELETE":
            aimed = {"id": str(s.webhook)}
    elif "{id}" in operation.path:
        scope = s.emailing if operation.path.startswith("/v2/ms/emailing/") else s.destination
        aimed = {"id": str(scope)}
    elif "{token}" in operation.path:
        aimed = {"token": s.tracking[operation.path[1]]}
    if aimed:
        return st.one_of(free, operation.as_strategy(generation_mode=mode, path_parameters=aimed))
    if operation.path == "/v2/ms/reports" and mode is GenerationMode.POSITIVE:
        reports = st.sampled_from(REPORT_FILES).map(lambda name: report_with_key(name, s.key))
        return st.one_of(free, st.builds(with_report, free, reports))
    return free


def with_report(case: Case[Any], raw: bytes) -> Case[Any]:
    case.body, case.media_type = raw, "message/rfc822"
    return case


def authenticate(case: Case[Any], token: str, bearer: bool) -> None:
    """The real token, either way the API takes it, instead of generated credentials."""
    case.query.pop("access_token", None)
    case.headers.pop("Authorization", None)
    if bearer:
        case.headers["Authorization"] = f"Bearer {token}"
    else:
        case.query["access_token"] = token


# --- checks beyond schemathesis' own -------------------------------------------------------


def error_contract(ctx: Any, response: Any, case: Case[Any]) -> None:
    """An API answer that is not a success is a 400 (or 429) with exactly Copernica's body."""
    if case.path.startswith(TRACKING):
        return
    ctype = response.headers.get("content-type", [""])[0]
    if response.status_code < 300:
        assert ctype == JSON or not ctype.startswith("application/json"), ctype
        return
    assert response.status_code in (400, 429), f"status {response.status_code}"
    assert ctype == JSON, ctype
    body = orjson.loads(response.content)
    assert list(body) == ["error"] and list(body["error"]) == ["message"], body
    assert isinstance(body["error"]["message"], str), body


def plain_tracking_errors(ctx: Any, response: Any, case: Case[Any]) -> None:
    """The tracking endpoints refuse with a plain-text 404 (or 405), never JSON or HTML."""
    if case.path.startswith(TRACKING) and response.status_code >= 400:
        assert response.status_code in (404, 405), f"status {response.status_code}"
        ctype = response.headers.get("content-type", [""])[0]
        assert ctype.startswith("text/plain"), ctype


def in_documented_order(doc: dict[str, Any]) -> Callable[[Any, Any, Case[Any]], None]:
    """A check: JSON answers have their keys in the order the document lists them."""

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            section, name = schema["$ref"].split("/")[-2:]
            schema = doc["components"][section][name]
        return schema

    def walk(value: Any, schema: dict[str, Any], where: str) -> None:
        schema = resolve(schema)
        if isinstance(value, dict) and "properties" in schema:
            order = [key for key in schema["properties"] if key in value]
            assert list(value) == order, f"{where}: keys {list(value)}, documented {order}"
            for key, sub in schema["properties"].items():
                if key in value:
                    walk(value[key], sub, f"{where}.{key}")
        elif isinstance(value, list) and "items" in schema:
            for n, item in enumerate(value):
                walk(item, schema["items"], f"{where}[{n}]")

    def in_documented_order(ctx: Any, response: Any, case: Case[Any]) -> None:
        ctype = response.headers.get("content-type", [""])[0]
        if response.status_code == 200 and ctype == JSON:
            ok = case.operation.definition.raw["responses"]["200"]
            walk(orjson.loads(response.content), ok["content"][JSON]["schema"], "body")

    return in_documented_order


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    error_contract,
    plain_tracking_errors,
]
# Bodies whose validity the document cannot state (are these bytes a report?): the request
# is neither valid nor invalid by the schema, so only the answer is judged.
OPAQUE = ("/v2/ms/events", "/v2/ms/reports", "/v2/ms/reports/sns")


@dataclass
class Finding:
    title: str
    request: str  # the first request that showed it, as curl
    answer: str
    operations: set[str] = field(default_factory=set)


@dataclass
class Findings:
    """Distinct failures: a 500 by the exception behind it, anything else per operation."""

    seen: dict[tuple[str, str], Finding] = field(default_factory=dict)
    raised: list[str] = field(default_factory=list)  # what the app raised on the last call
    requests: int = 0

    def add(self, case: Case[Any], failure: Failure, response: Any) -> None:
        status, label = response.status_code, case.operation.label
        if status >= 500:
            cause = self.raised[-1] if self.raised else "no exception"
            key, title = ("500", cause), f"HTTP {status}, the app raised {cause}"
        else:
            message = failure.message.strip().replace("\n", " / ")
            key, title = (failure.title, label), f"{failure.title} [{status}]: {message}"
        if key not in self.seen:
            answer = f"{status} {response.content[:200]!r}"
            self.seen[key] = Finding(title, case.as_curl_command(), answer)
        self.seen[key].operations.add(label)

    def report(self) -> str:
        return "\n".join(
            f"{i}. {f.title}\n   in {', '.join(sorted(f.operations))}\n"
            f"   {f.request}\n   -> {f.answer}"
            for i, f in enumerate(self.seen.values(), 1)
        )


def as_served(app: App, raised: list[str]) -> Callable[..., Any]:
    """The app as a server runs it: an exception after the 500 is logged, not re-raised."""

    async def serve(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except Exception as exc:
            raised.append(f"{type(exc).__name__}: {exc}")

    return serve


def examples(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> int:
    """Writes get twice the examples; ms/message/... runs the handlers of ms/destination/..."""
    if operation.path.startswith("/v2/ms/message/"):
        count = ALIAS_EXAMPLES
    else:
        count = EXAMPLES[mode] * (2 if operation.method.upper() == "POST" else 1)
    return max(1, round(count * SCALE))


def fuzz(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, s: Seed, run_checks: Any
) -> None:
    # Generation speed is what max_examples bounds; the health checks would only fail slow
    # generation of the big query and body schemas, which is accepted here.
    @settings(
        max_examples=examples(operation, mode),
        deadline=None,
        database=None,
        # the same cases every run, so CI is stable; MAILSTATS_FUZZ_RANDOM=1 explores anew
        derandomize=not os.environ.get("MAILSTATS_FUZZ_RANDOM"),
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(operation, mode, s), bearer=st.booleans())
    def run(case: Case[Any], bearer: bool) -> None:
        if case.path.startswith("/v2/"):
            authenticate(case, s.token, bearer)
        judged: list[Any] = []
        if operation.path not in OPAQUE:
            judged.append(schemathesis.checks.negative_data_rejection)
            if mode is GenerationMode.POSITIVE and s.aimed(case):
                judged.append(schemathesis.checks.positive_data_acceptance)
        run_checks(case, judged)

    run()


def has_inputs(operation: APIOperation[Any, Any, Any, Any]) -> bool:
    return bool(list(operation.iter_parameters())) or bool(operation.body)


# The PostgreSQL pool's own threads draw from the shared `random` module (jitter of new
# connections' lifetimes) while a case is being generated, which Hypothesis would take for
# a strategy using it; the strategies here use none.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.timeout(round(300 * max(1.0, SCALE)))
def test_fuzz(app: App, http: TestClient, token: str, backend: str) -> None:
    began, cpu = time.monotonic(), time.process_time()
    s = seed(app, http, token)
    doc = http.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    found = Findings()
    schema.app = as_served(app, found.raised)
    client = asgi.get_client(schema.app)  # not entered: the app's lifespan stays the fixture's
    ordered = in_documented_order(doc)

    def run_checks(case: Case[Any], judged: list[Any]) -> None:
        found.raised.clear()
        response = case.call(session=client)
        found.requests += 1
        try:
            case.validate_response(response, checks=[*CHECKS, ordered, *judged])
        except FailureGroup as group:
            for failure in group.exceptions:
                found.add(case, failure, response)

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        for mode in EXAMPLES:
            if mode is GenerationMode.POSITIVE or has_inputs(operation):
                fuzz(operation, mode, s, run_checks)
    took, cpu = time.monotonic() - began, time.process_time() - cpu
    print(f"\nfuzz [{backend}]: {found.requests} requests in {took:.1f}s ({cpu:.1f}s CPU)")
    assert not found.seen, f"{len(found.seen)} distinct failures:\n\n{found.report()}"
