"""A first cook with images, through the public API only, as the README's five minutes walk it.

    COOK_TOKEN=$(...the command bin/serve prints...) .venv/bin/python examples/first_cook.py

It creates a collection drawn by the built-in ``layers`` tool, imports the example HashLips layer
set shipped beside this file, cooks 20 pieces, accepts them all, exports them as images plus
ERC-721 metadata and downloads the ZIP. Every step is one GraphQL operation (or the download
route); read it beside docs/ to see what each one does. ``COOK_URL`` (default
http://127.0.0.1:8000) names another server.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
URL = os.environ.get("COOK_URL", "http://127.0.0.1:8000")

CREATE = """mutation {
  createCollection(input: {
    name: "Cult Secretaries", totalSupply: 1000, generator: {toolId: "layers"},
    traitTree: [
      {manual: {name: "Animal", traits: [{name: "Cat", value: "a cute cat", weight: 20},
                                         {name: "Owl", value: "a wise owl"}]}},
      {generated: {name: "id", range: {start: 0, end: 9999, zeroPad: 4, uniqueAcrossCook: true}}}
    ],
    template: {prompt: "[[Animal]] wearing a hat, #[[id]]"}
  }) { id }
}"""
IMPORT = """mutation($c: ID!, $f: Upload!) {
  importLayers(collectionId: $c, file: $f,
               layersOrder: [{name: "Background"}, {name: "Animal"}, {name: "Hat"}]) {
    traitTree { name }
  }
}"""
START = "mutation($c: ID!) { startCook(collectionId: $c, count: 20) { id } }"
COOK = "query($id: ID!) { cook(id: $id) { status numbers { completed failed } } }"
PIECES = """query($c: ID!, $k: ID!) {
  pieces(collectionId: $c, cookId: $k, first: 100) { edges { node { id } } }
}"""
ACCEPT = "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }"
EXPORT = "mutation($c: ID!) { exportCollection(collectionId: $c) { id } }"
EXPORTED = "query($id: ID!) { export(id: $id) { status provenanceHash } }"


def call(client: httpx.Client, query: str, **variables: Any) -> Any:
    body = client.post("/graphql", json={"query": query, "variables": variables}).json()
    if body.get("errors"):
        sys.exit(f"refused: {json.dumps(body['errors'], indent=2)}")
    return body["data"]


def wait(client: httpx.Client, query: str, key: str, object_id: str, ended: set[str]) -> Any:
    while (found := call(client, query, id=object_id)[key])["status"] not in ended:
        time.sleep(0.5)
    return found


def main() -> None:
    token = os.environ.get("COOK_TOKEN") or sys.exit("set COOK_TOKEN (bin/serve prints how)")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=URL, headers=headers, timeout=60) as client:
        collection = call(client, CREATE)["createCollection"]["id"]
        print(f"collection {collection}")

        operations = {"query": IMPORT, "variables": {"c": collection, "f": None}}
        zip_file = (HERE / "cult-secretaries-layers.zip").read_bytes()
        body = client.post(
            "/graphql",
            data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
            files={"0": ("layers.zip", zip_file, "application/zip")},
        ).json()
        if body.get("errors"):
            sys.exit(f"refused: {body['errors']}")
        tree = body["data"]["importLayers"]["traitTree"]
        print("layers imported; draw order:", ", ".join(c["name"] for c in tree))

        cook = call(client, START, c=collection)["startCook"]["id"]
        print(f"cook {cook} started (follow it: .venv/bin/cook watch {cook})")
        ended = wait(client, COOK, "cook", cook, {"COMPLETED", "FAILED", "CANCELLED"})
        print(f"cook {ended['status'].lower()}: {ended['numbers']}")

        edges = call(client, PIECES, c=collection, k=cook)["pieces"]["edges"]
        decisions = [{"pieceId": e["node"]["id"], "outcome": "ACCEPTED"} for e in edges]
        call(client, ACCEPT, d=decisions)
        print(f"{len(decisions)} pieces accepted")

        export = call(client, EXPORT, c=collection)["exportCollection"]["id"]
        done = wait(client, EXPORTED, "export", export, {"COMPLETED", "FAILED"})
        archive = Path(os.environ.get("COOK_FIRST_COOK_OUT", "first-cook.zip"))
        with client.stream("GET", f"/exports/{export}/archive") as response:
            response.raise_for_status()
            with archive.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        print(f"export {done['status'].lower()}, provenance {done['provenanceHash']}")
        print(f"saved {archive} ({archive.stat().st_size:,} bytes): images/ and metadata/")
        print(f"see the pieces in the studio: {URL}/studio")


if __name__ == "__main__":
    main()
