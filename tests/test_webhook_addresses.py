"""Outbound webhooks go only where they may: the address rules at save and at send time.

Every forbidden class is refused as an IP literal (IPv4 and IPv6) and through a host name that
resolves to it; a refused URL writes nothing; a name that resolves elsewhere by send time is
not sent to; a redirect is never followed. No request here leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import pytest

from orchestration.notifications.addresses import (
    AddressRefused,
    IPAddress,
    parse_networks,
    resolve_target,
)
from tests.api import Api
from tests.conftest import MakeApi
from tests.test_outbound_webhooks import CREATE, QUICK, create_endpoint, deliveries
from tests.webhook_receiver import webhook_receiver

FORBIDDEN = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "10.0.0.1": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "metadata",
    "169.254.7.7": "link-local",
    "224.0.0.251": "multicast",
    "0.0.0.0": "unspecified",
    "100.64.0.1": "reserved",
    "192.0.2.1": "reserved",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fd00:ec2::254": "metadata",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:10.0.0.1": "private",
    "64:ff9b::a9fe:a9fe": "metadata",  # NAT64 of 169.254.169.254
}


def literal(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def count_endpoints(api: Api) -> int:
    db = api.app.state.runtime.client[api.settings.db_name]
    found: int = await db["webhook_endpoints"].count_documents({})
    return found


@pytest.fixture
async def strict(make_api: MakeApi) -> Api:
    """No allow-list: the production rules (http still allowed, as in development)."""
    return await make_api(webhook_allowed_networks=[])


async def test_a_url_at_each_forbidden_address_class_is_refused_and_nothing_is_written(
    strict: Api,
) -> None:
    for address, kind in FORBIDDEN.items():
        url = f"http://{literal(address)}:8080/hook"
        error = await strict.error(CREATE, {"url": url, "events": ["cook.completed"]})
        assert error["extensions"]["code"] == "BAD_USER_INPUT", address
        assert error["extensions"]["field"] == "url"
        assert kind in error["message"], (address, error["message"])
    assert await count_endpoints(strict) == 0


async def test_a_host_name_that_resolves_to_loopback_is_refused(strict: Api) -> None:
    error = await strict.error(
        CREATE, {"url": "http://localhost:9/hook", "events": ["cook.completed"]}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "resolves to" in error["message"]
    assert "loopback" in error["message"]
    assert await count_endpoints(strict) == 0


@pytest.mark.parametrize("address", list(FORBIDDEN))
async def test_a_host_name_resolving_to_each_forbidden_class_is_refused(address: str) -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        # a public address first: one forbidden answer among several is enough to refuse
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address(address)]

    with pytest.raises(AddressRefused, match=FORBIDDEN[address]):
        await resolve_target("https://hooks.example.com/x", require_https=True, resolver=resolver)


async def test_the_allow_list_admits_exactly_the_networks_it_names() -> None:
    allowed = parse_networks(["127.0.0.1/32", "fd00::/8"])
    ok = await resolve_target("http://127.0.0.1:1/x", require_https=False, allowed=allowed)
    assert str(ok.address) == "127.0.0.1"
    await resolve_target("http://[fd00::5]/x", require_https=False, allowed=allowed)
    with pytest.raises(AddressRefused, match="loopback"):
        await resolve_target("http://127.0.0.2/x", require_https=False, allowed=allowed)
    with pytest.raises(AddressRefused, match="loopback"):
        await resolve_target("http://[::1]/x", require_https=False, allowed=allowed)


MALFORMED = [
    ("ftp://93.184.215.14/x", "http or https"),
    ("not a url", "without spaces"),
    ("http://user:pw@93.184.215.14/x", "credentials"),
    ("http:///x", "must name a host"),
    ("http://93.184.215.14:99999/x", "not a valid URL"),
    ("http://93.184.215.14/x#frag", "fragment"),
    ("http://exa_mple..com/x", "invalid host name"),
    ("http://" + "a" * 2100 + ".com/", "at most 2048"),
    ("http://no-such-host.invalid/x", "does not resolve"),
    ("http://0x7f.1/x", "loopback"),  # a numeric host the resolver reads as 127.0.0.1
]


async def test_malformed_urls_are_refused_with_bad_user_input(strict: Api) -> None:
    for url, message in MALFORMED:
        error = await strict.error(CREATE, {"url": url, "events": ["cook.completed"]})
        assert error["extensions"]["code"] == "BAD_USER_INPUT", url
        assert message in error["message"], (url, error["message"])
    assert await count_endpoints(strict) == 0


async def test_production_requires_https() -> None:
    with pytest.raises(AddressRefused, match="https"):
        await resolve_target("http://93.184.215.14/x", require_https=True)
    target = await resolve_target("https://93.184.215.14/x", require_https=True)
    assert target.https


async def test_bad_event_names_are_refused_and_nothing_is_written(make_api: MakeApi) -> None:
    api = await make_api(**QUICK)
    bad = [[], ["cook.done"], ["cook.completed", "cook.completed"], ["COOK.COMPLETED"]]
    with webhook_receiver() as receiver:
        for events in bad:
            error = await api.error(CREATE, {"url": receiver.url, "events": events})
            assert error["extensions"]["code"] == "BAD_USER_INPUT", events
            assert error["extensions"]["field"].startswith("events")
    assert await count_endpoints(api) == 0


async def test_an_update_to_a_forbidden_url_is_refused_and_changes_nothing(
    make_api: MakeApi,
) -> None:
    api = await make_api(**QUICK)
    with webhook_receiver() as receiver:
        endpoint, _ = await create_endpoint(api, receiver.url)
    update = "mutation($e: ID!, $u: String) { updateWebhookEndpoint(id: $e, url: $u) { url } }"
    error = await api.error(update, {"e": endpoint, "u": "http://[::1]:80/x"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    got = await api.data("query($e: ID!) { webhookEndpoint(id: $e) { url } }", {"e": endpoint})
    assert got["webhookEndpoint"]["url"] == receiver.url


async def test_a_name_that_resolves_elsewhere_by_send_time_is_not_sent_to(
    make_api: MakeApi,
) -> None:
    """DNS rebinding: allowed when saved, a private address when sent: nothing is sent."""
    api = await make_api(**QUICK, webhook_max_attempts=2)
    notifier = api.app.state.runtime.services.notifier
    with webhook_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        answer = {"now": "127.0.0.1"}

        async def rebinding(host: str, _port: int) -> list[IPAddress]:
            assert host == "hooks.test"
            return [ipaddress.ip_address(answer["now"])]

        notifier.resolver = rebinding
        endpoint, _ = await create_endpoint(api, f"http://hooks.test:{port}/hooks")
        answer["now"] = "10.1.2.3"
        await api.data(
            "mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id } }", {"e": endpoint}
        )
        delivery = await until_settled(api, endpoint)
        assert receiver.received == []
    assert delivery["status"] == "FAILED"
    assert all("private" in (a["error"] or "") for a in delivery["attemptLog"])
    assert all(a["statusCode"] is None for a in delivery["attemptLog"])


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "second"])
async def test_a_redirect_is_never_followed(make_api: MakeApi, target: str) -> None:
    api = await make_api(**QUICK, webhook_max_attempts=1)
    with webhook_receiver() as second:
        location = second.url if target == "second" else target
        with webhook_receiver(lambda n: (307, {"location": location})) as first:
            endpoint, _ = await create_endpoint(api, first.url)
            await api.data(
                "mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id } }", {"e": endpoint}
            )
            delivery = await until_settled(api, endpoint)
            await asyncio.sleep(0.2)
            assert len(first.received) == 1
        assert second.received == []
    assert delivery["status"] == "FAILED"
    [attempt] = delivery["attemptLog"]
    assert attempt["statusCode"] == 307
    assert "redirects are not followed" in attempt["error"]


async def until_settled(api: Api, endpoint: str, within: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        found = await deliveries(api, endpoint)
        if found and found[0]["status"] != "PENDING":
            return found[0]
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)
