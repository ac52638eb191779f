from tests.api import OWNER, Api


async def test_an_owner_creates_and_reads_back_a_collection(api: Api) -> None:
    created = await api.create_collection()
    data = await api.data(
        "query($id: ID!) { collection(id: $id) { id name ownerId } }", {"id": created["id"]}
    )
    assert data["collection"] == {"id": created["id"], "name": "Cult Secretaries", "ownerId": OWNER}
