"""Admin operations: every owner's cooks by status, expired leases, any cook's events, cancel."""

from __future__ import annotations

import asyncio

import pytest

from tests.api import ADMIN, OWNER, STRANGER, Api, start_cook, wait_for_cook
from tests.conftest import MakeApi


async def running_cook(api: Api, who: str) -> str:
    made = await api.create_collection(
        as_=who, generator={"toolId": "external"}, template={"prompt": "[[Animal]]"}
    )
    cook = await start_cook(api, made["id"], as_=who, count=1, maxConcurrent=1)
    await api.app.state.runtime.services.orchestrator.idle()  # its piece is submitted
    return str(cook["id"])


ADMIN_COOKS = """query($status: CookStatus!, $first: Int, $after: String) {
  adminCooks(status: $status, first: $first, after: $after) {
    edges { node { id status } } pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.mark.usefixtures("external_tool")
async def test_an_admin_pages_through_every_owners_cooks_in_a_status(make_api: MakeApi) -> None:
    api = await make_api(scheduler=False)
    mine = await running_cook(api, OWNER)
    theirs = await running_cook(api, STRANGER)
    first = await api.data(ADMIN_COOKS, {"status": "RUNNING", "first": 1}, as_=ADMIN)
    page = first["adminCooks"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await api.data(
        ADMIN_COOKS,
        {"status": "RUNNING", "first": 1, "after": page["pageInfo"]["endCursor"]},
        as_=ADMIN,
    )
    ids = [e["node"]["id"] for e in page["edges"] + rest["adminCooks"]["edges"]]
    assert ids == [theirs, mine]  # newest first
    done = await api.data(ADMIN_COOKS, {"status": "COMPLETED"}, as_=ADMIN)
    assert done["adminCooks"]["edges"] == []


@pytest.mark.usefixtures("external_tool")
async def test_an_admin_sees_in_flight_pieces_whose_lease_has_expired(make_api: MakeApi) -> None:
    api = await make_api(scheduler=False, lease_seconds=0.1)  # no sweeper takes them over
    cook_id = await running_cook(api, OWNER)
    query = "query { adminExpiredLeases { id cookId status attempt } }"
    await asyncio.sleep(0.3)
    [piece] = (await api.data(query, as_=ADMIN))["adminExpiredLeases"]
    assert piece["cookId"] == cook_id
    assert piece["status"] == "RUNNING"
    await api.app.state.runtime.services.orchestrator.tick()  # the sweeper takes it over
    await api.app.state.runtime.services.orchestrator.idle()
    listed = (await api.data(query, as_=ADMIN))["adminExpiredLeases"]
    assert piece["id"] not in [p["id"] for p in listed if p["attempt"] == piece["attempt"]]


async def test_an_admin_reads_any_cooks_events_and_a_missing_cook_is_not_found(api: Api) -> None:
    made = await api.create_collection(as_=OWNER)
    cook = await start_cook(api, made["id"], as_=OWNER, count=1)
    await wait_for_cook(api, cook["id"])
    query = "query($c: ID!, $a: Int) { adminCookEvents(cookId: $c, afterSeq: $a) { seq type } }"
    events = (await api.data(query, {"c": cook["id"]}, as_=ADMIN))["adminCookEvents"]
    assert events[0] == {"seq": 1, "type": "COOK_STARTED"}
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    later = (await api.data(query, {"c": cook["id"], "a": 1}, as_=ADMIN))["adminCookEvents"]
    assert later == events[1:]
    error = await api.error(query, {"c": "ck_" + "0" * 32}, as_=ADMIN)
    assert error["extensions"]["code"] == "NOT_FOUND"


CANCEL = "mutation($c: ID!, $r: String) { adminCancelCook(id: $c, reason: $r) { status reason } }"


@pytest.mark.usefixtures("external_tool")
async def test_an_admin_cancels_anyones_cook_and_the_reason_is_recorded(
    make_api: MakeApi,
) -> None:
    api = await make_api(scheduler=False)
    cook_id = await running_cook(api, OWNER)
    cancelled = (await api.data(CANCEL, {"c": cook_id, "r": "abuse report 42"}, as_=ADMIN))[
        "adminCancelCook"
    ]
    assert cancelled["status"] in {"CANCELLING", "CANCELLED"}
    assert cancelled["reason"] == "cancelled by root: abuse report 42"
    again = await api.data(CANCEL, {"c": cook_id}, as_=ADMIN)  # idempotent
    assert again["adminCancelCook"]["status"] == cancelled["status"]


@pytest.mark.usefixtures("external_tool")
async def test_an_overlong_cancel_reason_is_refused_and_changes_nothing(
    make_api: MakeApi,
) -> None:
    api = await make_api(scheduler=False)
    cook_id = await running_cook(api, OWNER)
    error = await api.error(CANCEL, {"c": cook_id, "r": "x" * 501}, as_=ADMIN)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "reason"
    cook = await api.data("query($c: ID!) { cook(id: $c) { status } }", {"c": cook_id})
    assert cook["cook"]["status"] == "RUNNING"
