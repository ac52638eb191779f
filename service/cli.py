"""cook: run the Cook service and its development helpers.

serve           the API (starts the embedded database unless MONGODB_URI is set)
db              the embedded database on its own, for several API processes to share
token           mint a development token (signed with the key under COOK_DATA_DIR)
watch           follow a cook live with a progress bar; exits with its final status
media migrate   copy every stored file to the other media store (docs/media.md)
export-schema   print the GraphQL schema (schema.graphql is this output)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Imported where used: ``cook db`` (the embedded server, started by every API process and
# test that needs one) loads neither the app nor its settings (about a third of its start).
if TYPE_CHECKING:
    from service.settings import MediaStoreKind, Settings

PLAIN_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service import collector
    from service.allocator import keep_large_buffers
    from service.app import create_app
    from service.boundary import MAX_BODY_BYTES, MAX_HEADER_BYTES
    from service.settings import Settings
    from service.websocket_writes import CoalescingWebSocketProtocol

    keep_large_buffers()  # images and media chunks: the same as the embedded server's
    settings = Settings()
    if settings.mongodb_uri is None:
        from service.embedded_db import IN_USE_EXIT, data_dir_in_use

        refusal = data_dir_in_use(settings.embedded_dir)
        if refusal is not None:
            print(f"cook serve: {refusal}", file=sys.stderr)
            return IN_USE_EXIT
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    from service.stores import describe

    where = "the embedded database" if settings.mongodb_uri is None else "MONGODB_URI"
    print(f"Cook on http://{host}:{port} using {where} (data in {settings.data_dir})")
    print(f"  Media:     {describe(settings)} (COOK_MEDIA_STORE={settings.media_store_kind})")
    print(f"  Studio:    http://{host}:{port}/studio")
    if settings.is_development:
        print(f"  GraphiQL:  http://{host}:{port}/graphql")
        print(f"  A token:   {token_command(settings)}   (add --admin for an admin)")
        print("  Then paste it into the studio, or send Authorization: Bearer <token>")
    sys.stdout.flush()
    app = create_app(settings)
    collector.tune()  # after the app is built: see service/collector.py
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        # JSON logs: uvicorn's loggers go through the root's JSON handler, not its own config.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        # The boundary's limits (service/boundary.py): headers up to MAX_HEADER_BYTES reach the
        # app, which answers an oversized token in the documented shape; beyond that h11
        # answers a bare 400. WebSocket messages are capped like request bodies.
        http="h11",
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        ws_max_size=MAX_BODY_BYTES,
        # Progress messages are a few hundred bytes, sent to every subscriber: compressing each
        # cost more CPU than anything else per message but the send (bench section 3).
        ws_per_message_deflate=False,
        ws=CoalescingWebSocketProtocol,  # frames written together: service/websocket_writes.py
    )
    return 0


def token_command(settings: Settings) -> str:
    """The `cook token` command line that signs with this server's key and claims, runnable
    as printed from any directory: the data directory absolute, any issuer or audience that
    is not the default spelled out, and the executable's full path."""
    values = {"COOK_DATA_DIR": str(settings.data_dir.resolve())}
    defaults = type(settings).model_fields
    if settings.jwt_issuer != defaults["jwt_issuer"].default:
        values["COOK_JWT_ISSUER"] = settings.jwt_issuer
    if settings.jwt_audience != defaults["jwt_audience"].default:
        values["COOK_JWT_AUDIENCE"] = settings.jwt_audience
    cook = Path(sys.executable).parent / "cook"
    python = shlex.quote(sys.executable)
    program = shlex.quote(str(cook)) if cook.exists() else f"{python} -m service"
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())
    return f"{assignments} {program} token --sub alice"


def _db(args: argparse.Namespace) -> int:
    from service.embedded_db import IN_USE_EXIT, DataDirInUse, serve

    if args.data_dir:
        data_dir = Path(args.data_dir)
    else:
        from service.settings import Settings

        data_dir = Settings().embedded_dir
    try:
        asyncio.run(serve(data_dir, args.host, args.port, args.address_file, args.parent_pipe))
    except DataDirInUse as exc:
        print(f"cook db: {exc}", file=sys.stderr)
        return IN_USE_EXIT
    return 0


def _token(args: argparse.Namespace) -> int:
    from auth.dev_keys import ensure_dev_keys, mint_token
    from domain.ids import parse_account_id
    from service.settings import Settings

    settings = Settings()
    if not settings.is_development:
        print("tokens are minted only in development (COOK_ENV=development)", file=sys.stderr)
        return 2
    try:
        subject = parse_account_id(args.sub)
    except ValueError as exc:
        print(f"--sub: {exc}", file=sys.stderr)
        return 2
    roles = ["admin"] if args.admin else []
    token = mint_token(
        ensure_dev_keys(settings.keys_dir),
        subject=subject,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        roles=roles,
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


def _watch(args: argparse.Namespace) -> int:
    from service.settings import Settings
    from service.watch import watch

    token = args.token or os.environ.get("COOK_TOKEN")
    if not token:
        print("cook watch: pass --token or set COOK_TOKEN", file=sys.stderr)
        return 2
    settings = Settings()
    url = args.url or f"ws://{settings.host}:{settings.port}/graphql"
    return watch(url, token, args.cook_id)


def _media_migrate(args: argparse.Namespace) -> int:
    from service.settings import MediaStoreKind, Settings

    settings = Settings()
    if settings.mongodb_uri is None:
        from service.embedded_db import IN_USE_EXIT, data_dir_in_use

        refusal = data_dir_in_use(settings.embedded_dir)
        if refusal is not None:
            print(f"cook media migrate: {refusal} (stop it first)", file=sys.stderr)
            return IN_USE_EXIT
    to = MediaStoreKind(args.to)
    source = MediaStoreKind.FILESYSTEM if to is MediaStoreKind.GRIDFS else MediaStoreKind.GRIDFS
    return asyncio.run(_migrate(settings, source, to))


async def _migrate(settings: Settings, source: MediaStoreKind, to: MediaStoreKind) -> int:
    from orchestration.storage.media_migrate import migrate
    from service.database import connect
    from service.stores import open_store

    async with connect(settings) as client:
        db = client[settings.db_name]
        done = await migrate(
            await open_store(source, settings, db),
            await open_store(to, settings, db),
            lambda line: print(line, flush=True),
        )
    print(
        f"{source} -> {to}: {done.copied} files copied ({done.bytes_copied} bytes), "
        f"{done.present} already there and verified, {len(done.failed)} failed",
        flush=True,
    )
    for line in done.failed:
        print(f"  {line}", file=sys.stderr)
    if done.ok:
        print(f"Set COOK_MEDIA_STORE={to} to use the new store.", flush=True)
    return 0 if done.ok else 1


def _export_schema(_: argparse.Namespace) -> int:
    from schema.schema import sdl

    sys.stdout.write(sdl())
    return 0


def json_logs_asked() -> bool:
    """``COOK_LOG_FORMAT=json`` (the variable's name in any case, as the settings read it)."""
    return any(k.lower() == "cook_log_format" and v == "json" for k, v in os.environ.items())


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] == ["db"] and not json_logs_asked():
        # plain text, as configure_logging sets it, without importing the app
        logging.basicConfig(level=logging.INFO, format=PLAIN_LOG_FORMAT)
    else:
        from service.observability import configure_logging

        configure_logging()
    parser = argparse.ArgumentParser(
        prog="cook", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API")
    serve.add_argument("--host", default=None, help="default: COOK_HOST")
    serve.add_argument("--port", type=int, default=None, help="default: COOK_PORT")
    serve.set_defaults(func=_serve)

    db = sub.add_parser("db", help="run the embedded database server on its own")
    db.add_argument("--data-dir", default=None, help="default: $COOK_DATA_DIR/db")
    db.add_argument("--host", default="127.0.0.1")
    db.add_argument("--port", type=int, default=27017)
    db.add_argument("--address-file", type=Path, default=None, help="write the URI here")
    db.add_argument("--parent-pipe", type=int, default=None, help=argparse.SUPPRESS)
    db.set_defaults(func=_db)

    token = sub.add_parser("token", help="mint a development token")
    token.add_argument("--sub", required=True, help="the account id")
    token.add_argument("--admin", action="store_true", help="grant the admin role")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(func=_token)

    follow = sub.add_parser("watch", help="follow a cook live; exit with its final status")
    follow.add_argument("cook_id", metavar="COOK_ID")
    follow.add_argument("--url", default=None, help="default: ws://COOK_HOST:COOK_PORT/graphql")
    follow.add_argument("--token", default=None, help="default: $COOK_TOKEN")
    follow.set_defaults(func=_watch)

    media = sub.add_parser("media", help="the media store")
    media_sub = media.add_subparsers(dest="media_command", required=True)
    migrate = media_sub.add_parser(
        "migrate", help="copy every stored file to the other store (resumable, verified)"
    )
    migrate.add_argument("--to", required=True, choices=["gridfs", "filesystem"])
    migrate.set_defaults(func=_media_migrate)

    export = sub.add_parser("export-schema", help="print the GraphQL schema")
    export.set_defaults(func=_export_schema)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
