"""Every operation as an anonymous caller, a stranger, the owner and an admin."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import ExecutionResult

from schema.context import Context
from schema.schema import schema
from service.settings import Settings
from tests.api import (
    ADMIN,
    OWNER,
    STRANGER,
    Api,
    collection_input,
    start_cook,
    start_export,
    wait_for_cook,
    wait_for_export,
    with_test_tool,
)
from tests.layer_files import layer_png, project_zip, upload

OK, UNAUTHENTICATED, NOT_FOUND, FORBIDDEN = "ok", "UNAUTHENTICATED", "NOT_FOUND", "FORBIDDEN"


@dataclass(frozen=True)
class Operation:
    name: str
    document: str
    writes: bool
    # expected outcome for anonymous, stranger, owner, admin, on the owner's collection
    expect: tuple[str, str, str, str]
    upload: tuple[str, bytes] | None = None  # a variable sent as a file (multipart), and its bytes

    def variables(self, target: Target) -> dict[str, Any]:
        return {
            "id": target.collection,
            "cook": target.cook,
            "spare": target.spare,
            "piece": target.piece,
            "spell": target.spell,
            "spellInput": {"name": "s", "steps": [{"toolId": "prompt", "params": {"p": "x"}}]},
            "done": target.done,
            "export": target.export,
            "endpoint": target.endpoint,
            "delivery": target.delivery,
            "hook": CLOSED_PORT_URL,
            "input": {"name": "changed"},
            "create": collection_input(name="new"),
            "file": {
                "categories": [
                    {"name": "Animal", "traits": [{"name": "Dog"}]},
                    {"name": "miladyid", "generator": {"end": 3}},
                ]
            },
        }


@dataclass(frozen=True)
class Target:
    """The owner's things an operation is tried on: those its variables name (``needs``),
    each left empty when the operation cannot reach it."""

    collection: str = ""  # with a running cook
    cook: str = ""  # running, one piece in flight for seconds
    spare: str = ""  # a collection with no cook, and one layer (for previewLayers)
    piece: str = ""  # a completed, accepted piece
    done: str = ""  # its collection, with a completed export
    export: str = ""  # that export
    spell: str = ""
    endpoint: str = ""  # a webhook endpoint (to a closed loopback port, allow-listed here)
    delivery: str = ""  # its delivery of the completed cook, FAILED


# The parts of a target each variable reaches: a variable no part is listed for ($input,
# $create, $file, ...) carries its own value.
PARTS = {
    "id": "running",
    "cook": "running",
    "spare": "spare",
    "piece": "exported",
    "done": "exported",
    "export": "exported",
    "spell": "spell",
    "endpoint": "endpoint",
    "delivery": "delivery",
}


def needs(document: str) -> set[str]:
    """The parts of a target the operation's variables reach."""
    return {PARTS[name] for name in re.findall(r"\$(\w+)", document) if name in PARTS}


def settled(cook: dict[str, Any]) -> bool:
    """Every event up to ``lastSeq`` is written (an event follows its transition)."""
    return len(cook["events"]) == cook["lastSeq"]


async def make_target(api: Api, parts: set[str]) -> Target:
    """The owner's things of ``parts`` (``needs``), made side by side: each part waits on its
    own cook or export. Only what the operation can reach is made: a refused call must change
    nothing (the whole database is compared), and what it cannot name it cannot change."""

    async def endpoint() -> str:
        made = await api.data(
            'mutation($u: String!) { createWebhookEndpoint(url: $u, events: ["cook.completed"]) '
            "{ id } }",
            {"u": CLOSED_PORT_URL},
        )
        found: str = made["createWebhookEndpoint"]["id"]
        return found

    async def running() -> dict[str, str]:
        slow = await api.create_collection(as_=OWNER, **with_test_tool(latencyMs=20_000))
        cook = await start_cook(api, slow["id"], count=2, maxConcurrent=1)
        await wait_for_cook(
            api,
            cook["id"],
            lambda c: c["numbers"]["inFlight"] == 1 and c["lastSeq"] >= 2 and settled(c),
            extra="events(first: 500) { seq }",
        )
        return {"collection": slow["id"], "cook": cook["id"]}

    async def spare() -> dict[str, str]:
        made = await api.create_collection(as_=OWNER)
        layer = await upload(
            api,
            "mutation($c: ID!, $file: Upload!) { uploadLayer(collectionId: $c, category: "
            '"Animal", trait: "Cat", file: $file) { width } }',
            {"c": made["id"]},
            {"file": ("cat.png", PIXEL, "image/png")},
        )
        assert "errors" not in layer, layer
        return {"spare": made["id"]}

    async def exported() -> dict[str, str]:
        done = await api.create_collection(as_=OWNER)
        finished = await wait_for_cook(
            api,
            (await start_cook(api, done["id"], count=1))["id"],
            lambda c: c["status"] == "COMPLETED" and settled(c),
            extra="pieces { id } events(first: 500) { seq }",
        )
        piece = finished["pieces"][0]["id"]
        await api.data(
            "mutation($p: ID!) { reviewPieces(decisions: [{pieceId: $p, outcome: ACCEPTED}]) "
            "{ id } }",
            {"p": piece},
        )
        export = await wait_for_export(api, (await start_export(api, done["id"]))["id"])
        return {"done": done["id"], "piece": piece, "export": export["id"]}

    async def spell() -> dict[str, str]:
        made = await api.data(
            "mutation($i: SpellInput!) { createSpell(input: $i) { id } }",
            {"i": {"name": "mine", "steps": [{"toolId": "prompt", "params": {"p": "[[Animal]]"}}]}},
        )
        return {"spell": made["createSpell"]["id"]}

    fields: dict[str, str] = {}
    # A delivery is the completed cook's to an endpoint made before it ended (the slow cook
    # ends only when cancelled).
    if "endpoint" in parts or "delivery" in parts:
        fields["endpoint"] = await endpoint()
    if "delivery" in parts:
        parts = parts | {"exported"}
    made = {"running": running, "spare": spare, "exported": exported, "spell": spell}
    for found in await asyncio.gather(*(make() for part, make in made.items() if part in parts)):
        fields.update(found)
    if "delivery" in parts:
        fields["delivery"] = await failed_delivery(api, fields["endpoint"])
    return Target(**fields)


CLOSED_PORT_URL = "http://127.0.0.1:9/hooks"  # the discard port: nothing listens


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Webhooks may go to loopback (where nothing answers), each tried once."""
    return settings.model_copy(
        update={"webhook_allowed_networks": ["127.0.0.1/32"], "webhook_max_attempts": 1}
    )


async def failed_delivery(api: Api, endpoint: str) -> str:
    query = "query($e: ID!) { webhookDeliveries(endpointId: $e) { edges { node { id status } } } }"
    for _ in range(600):
        edges = (await api.data(query, {"e": endpoint}))["webhookDeliveries"]["edges"]
        if edges and edges[0]["node"]["status"] == "FAILED":
            found: str = edges[0]["node"]["id"]
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the delivery did not fail")


OWNED = (UNAUTHENTICATED, NOT_FOUND, OK, OK)
ANY_SIGNED_IN = (UNAUTHENTICATED, OK, OK, OK)
ADMIN_ONLY = (UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK)

OPERATIONS = [
    Operation("viewer", "query { viewer { id } }", False, ANY_SIGNED_IN),
    Operation("tools", "query { tools { id } }", False, ANY_SIGNED_IN),
    Operation("collection", "query($id: ID!) { collection(id: $id) { id } }", False, OWNED),
    Operation(
        "collections", "query { collections { edges { node { id } } } }", False, ANY_SIGNED_IN
    ),
    Operation(
        "createCollection",
        "mutation($create: CreateCollectionInput!) { createCollection(input: $create) { id } }",
        True,
        ANY_SIGNED_IN,
    ),
    Operation(
        "updateCollection",
        "mutation($id: ID!, $input: UpdateCollectionInput!) "
        "{ updateCollection(id: $id, input: $input) { id } }",
        True,
        OWNED,
    ),
    Operation(
        "importTraitTree",
        "mutation($id: ID!, $file: JSON!) { importTraitTree(id: $id, file: $file) { id } }",
        True,
        OWNED,
    ),
    Operation(
        "archiveCollection", "mutation($id: ID!) { archiveCollection(id: $id) { id } }", True, OWNED
    ),
    Operation(
        "restoreCollection", "mutation($id: ID!) { restoreCollection(id: $id) { id } }", True, OWNED
    ),
    Operation(
        "previewPieces",
        "query($id: ID!) { previewPieces(collectionId: $id, count: 3) { seed } }",
        False,
        OWNED,
    ),
    Operation(
        "previewLayers",
        "query($spare: ID!) { previewLayers(collectionId: $spare, count: 2, size: 16) { seed } }",
        False,
        OWNED,
    ),
    Operation(
        "cook", "query($cook: ID!) { cook(id: $cook) { id numbers { live } } }", False, OWNED
    ),
    Operation(
        "cooks",
        "query($id: ID!) { cooks(collectionId: $id) { edges { node { id } } } }",
        False,
        OWNED,
    ),
    Operation(
        "startCook",
        "mutation($spare: ID!) { startCook(collectionId: $spare, count: 1) { id } }",
        True,
        OWNED,
    ),
    Operation("pauseCook", "mutation($cook: ID!) { pauseCook(id: $cook) { id } }", True, OWNED),
    Operation("resumeCook", "mutation($cook: ID!) { resumeCook(id: $cook) { id } }", True, OWNED),
    Operation("cancelCook", "mutation($cook: ID!) { cancelCook(id: $cook) { id } }", True, OWNED),
    Operation(
        "reviewPieces",
        "mutation($piece: ID!) "
        "{ reviewPieces(decisions: [{pieceId: $piece, outcome: REJECTED}]) { id } }",
        True,
        OWNED,
    ),
    Operation("piece", "query($piece: ID!) { piece(id: $piece) { id } }", False, OWNED),
    Operation(
        "pieces",
        "query($id: ID!) { pieces(collectionId: $id) { edges { node { id } } } }",
        False,
        OWNED,
    ),
    Operation(
        "setPiecesExcluded",
        "mutation($piece: ID!) { setPiecesExcluded(pieceIds: [$piece], excluded: true) { id } }",
        True,
        OWNED,
    ),
    Operation(
        "exportCollection",
        "mutation($done: ID!) { exportCollection(collectionId: $done) { id } }",
        True,
        OWNED,
    ),
    Operation("export", "query($export: ID!) { export(id: $export) { id } }", False, OWNED),
    Operation(
        "exports",
        "query($done: ID!) { exports(collectionId: $done) { edges { node { id } } } }",
        False,
        OWNED,
    ),
    Operation(
        "collectionAnalytics",
        "query($done: ID!) { collectionAnalytics(collectionId: $done) { pieces } }",
        False,
        OWNED,
    ),
    Operation(
        "adminCooks",
        "query { adminCooks(status: RUNNING) { edges { node { id } } } }",
        False,
        ADMIN_ONLY,
    ),
    Operation("adminExpiredLeases", "query { adminExpiredLeases { id } }", False, ADMIN_ONLY),
    Operation(
        "adminCookEvents",
        "query($cook: ID!) { adminCookEvents(cookId: $cook) { seq } }",
        False,
        ADMIN_ONLY,
    ),
    Operation(
        "adminCancelCook",
        'mutation($cook: ID!) { adminCancelCook(id: $cook, reason: "test") { id } }',
        True,
        ADMIN_ONLY,
    ),
]
OPERATIONS += [
    Operation("spell", "query($spell: ID!) { spell(id: $spell) { id } }", False, OWNED),
    Operation("spells", "query { spells { edges { node { id } } } }", False, ANY_SIGNED_IN),
    Operation(
        "createSpell",
        "mutation($spellInput: SpellInput!) { createSpell(input: $spellInput) { id } }",
        True,
        ANY_SIGNED_IN,
    ),
    Operation(
        "updateSpell",
        "mutation($spell: ID!, $spellInput: SpellInput!) "
        "{ updateSpell(id: $spell, input: $spellInput) { id } }",
        True,
        OWNED,
    ),
]
PIXEL = layer_png((1, 2, 3, 255))
OPERATIONS += [
    Operation(
        "importLayers",
        "mutation($id: ID!, $file: Upload!) "
        "{ importLayers(collectionId: $id, file: $file) { id } }",
        True,
        OWNED,
        ("file", project_zip({"Animal": {"Cat.png": PIXEL, "Owl.png": PIXEL}})),
    ),
    Operation(
        "uploadLayer",
        "mutation($id: ID!, $file: Upload!) "
        '{ uploadLayer(collectionId: $id, category: "Animal", trait: "Cat", file: $file) '
        "{ width } }",
        True,
        OWNED,
        ("file", PIXEL),
    ),
]
# Relay refetch: another user's object is null, exactly like a missing one (tests/test_nodes.py
# checks the answers are identical), so a stranger's call succeeds with nothing in it.
OPERATIONS += [
    Operation(
        "node", "query($id: ID!) { node(id: $id) { id } }", False, (UNAUTHENTICATED, OK, OK, OK)
    ),
    Operation(
        "nodes",
        "query($id: ID!) { nodes(ids: [$id]) { id } }",
        False,
        (UNAUTHENTICATED, OK, OK, OK),
    ),
]

OPERATIONS += [
    Operation(
        "webhookEndpoint",
        "query($endpoint: ID!) { webhookEndpoint(id: $endpoint) { id } }",
        False,
        OWNED,
    ),
    Operation(
        "webhookEndpoints",
        "query { webhookEndpoints { edges { node { id } } } }",
        False,
        ANY_SIGNED_IN,
    ),
    Operation(
        "webhookDeliveries",
        "query($endpoint: ID!) { webhookDeliveries(endpointId: $endpoint) "
        "{ edges { node { id } } } }",
        False,
        OWNED,
    ),
    Operation(
        "createWebhookEndpoint",
        'mutation($hook: String!) { createWebhookEndpoint(url: $hook, events: ["cook.failed"]) '
        "{ secret } }",
        True,
        ANY_SIGNED_IN,
    ),
    Operation(
        "updateWebhookEndpoint",
        'mutation($endpoint: ID!) { updateWebhookEndpoint(id: $endpoint, description: "d") '
        "{ id } }",
        True,
        OWNED,
    ),
    Operation(
        "deleteWebhookEndpoint",
        "mutation($endpoint: ID!) { deleteWebhookEndpoint(id: $endpoint) { id } }",
        True,
        OWNED,
    ),
    Operation(
        "rotateWebhookSecret",
        "mutation($endpoint: ID!) { rotateWebhookSecret(id: $endpoint) { secret } }",
        True,
        OWNED,
    ),
    Operation(
        "sendTestWebhook",
        "mutation($endpoint: ID!) { sendTestWebhook(endpointId: $endpoint) { id } }",
        True,
        OWNED,
    ),
    Operation(
        "redeliver",
        "mutation($delivery: ID!) { redeliver(deliveryId: $delivery) { id } }",
        True,
        OWNED,
    ),
]
OPERATIONS.append(
    Operation(
        "cookProgress",
        "subscription($cook: ID!) { cookProgress(cookId: $cook, afterSeq: 0) { seq } }",
        False,
        OWNED,
    )
)
CALLERS = [None, STRANGER, OWNER, ADMIN]


def test_every_root_field_of_the_schema_has_an_expectation() -> None:
    from graphql import build_schema

    from schema.schema import schema

    sdl = build_schema(schema.as_str())
    roots = [t for t in (sdl.query_type, sdl.mutation_type, sdl.subscription_type) if t]
    fields = {name for root in roots for name in root.fields}
    assert fields == {op.name for op in OPERATIONS}, "declare the expected outcome of new fields"


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
async def test_each_operation_answers_each_kind_of_caller_as_expected(
    api: Api, op: Operation
) -> None:
    """Refused callers first, on one target (a refusal must change nothing, so they can share
    it); each caller allowed to write gets a fresh target of its own."""
    parts = needs(op.document)
    target = await make_target(api, parts)
    order = sorted(range(len(CALLERS)), key=lambda i: op.expect[i] == OK)
    outcomes: dict[str, str] = {}
    wrote = False
    for i in order:
        caller, expected = CALLERS[i], op.expect[i]
        if expected == OK and op.writes and wrote:
            target = await make_target(api, parts)
        await notified(api)
        before = await snapshot(api)
        body = await run(api, op, target, caller)
        errors = body.get("errors") or []
        outcomes[str(caller)] = errors[0]["extensions"]["code"] if errors else OK
        if expected == OK:
            wrote = wrote or op.writes
            continue
        # nothing answered: no data, or (a nullable root field such as ``node``) only nulls
        assert body["data"] is None or not any(body["data"].values()), body
        assert len(errors) == 1, errors
        assert await snapshot(api) == before, f"a refused call by {caller} changed something"
    wanted = {str(c): op.expect[i] for i, c in enumerate(CALLERS)}
    assert outcomes == wanted


async def run(api: Api, op: Operation, target: Target, caller: str | None) -> dict[str, Any]:
    """Over HTTP; a subscription's first message through the schema, as the WebSocket runs it."""
    token = api.token_for(caller)
    if op.upload is not None:
        name, data = op.upload
        file = {name: ("upload.bin", data, "application/octet-stream")}
        return await upload(api, op.document, op.variables(target), file, as_=caller)
    if not op.document.startswith("subscription"):
        return await api.post(op.document, op.variables(target), token=token)
    runtime = api.app.state.runtime
    context = Context(services=runtime.services, request_id="matrix")
    if token is not None:
        context.principal = await runtime.verifier.verify(token)
    stream = await schema.subscribe(op.document, op.variables(target), context_value=context)
    assert not isinstance(stream, ExecutionResult), stream
    try:
        first = await anext(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return {"data": first.data, "errors": [e.formatted for e in first.errors or []]}


async def notified(api: Api) -> None:
    """Wait until the notifier has taken every ended cook's and export's marker: it works on
    its own schedule, and its bookkeeping between two snapshots is not the refused call's."""
    db = api.app.state.runtime.client[api.settings.db_name]
    for _ in range(400):
        marked = [
            await db[name].count_documents({"notify": {"$exists": True}})
            for name in ("cooks", "exports")
        ]
        if not any(marked):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the notifier left a marker for 20 s")


async def snapshot(api: Api) -> dict[str, list[dict[str, Any]]]:
    db = api.app.state.runtime.client[api.settings.db_name]
    names = (
        "collections",
        "cooks",
        "pieces",
        "cook_events",
        "exports",
        "export_selections",
        "spells",
        "layer_sets",
        "webhook_endpoints",
        "webhook_deliveries",
        "notification_deliveries",
    )
    return {name: [doc async for doc in db[name].find({}).sort("_id")] for name in names}


async def test_another_users_collection_is_indistinguishable_from_a_missing_one(api: Api) -> None:
    target = await api.create_collection(as_=OWNER)
    missing = "col_" + "0" * 32
    query = "query($id: ID!) { collection(id: $id) { id } }"
    theirs = await api.error(query, {"id": target["id"]}, as_=STRANGER)
    absent = await api.error(query, {"id": missing}, as_=STRANGER)
    assert theirs["message"].replace(target["id"], "X") == absent["message"].replace(missing, "X")
    assert theirs["extensions"] == absent["extensions"]


async def test_a_collection_created_by_an_admin_for_nobody_else_belongs_to_the_admin(
    api: Api,
) -> None:
    created = await api.create_collection(as_=ADMIN)
    assert created["ownerId"] == ADMIN
    mine = await api.data("query { collections { edges { node { id } } } }", as_=OWNER)
    assert mine["collections"]["edges"] == []


async def test_an_admin_lists_only_their_own_collections_under_collections(api: Api) -> None:
    await api.create_collection(as_=OWNER)
    data = await api.data("query { collections { edges { node { id } } } }", as_=ADMIN)
    assert data["collections"]["edges"] == []
