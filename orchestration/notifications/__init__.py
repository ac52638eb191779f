"""Outbound webhooks: telling an owner, over signed HTTP, that a cook or an export ended.

(Not to be confused with ``orchestration/generators/webhooks.py``: the *inbound* provider
webhooks.)

- the outbox mark a cook's or export's ending update sets on the same document lives in
  ``orchestration/base/notify_marker.py``, so the stores below can write it;
- ``fanout``: from marked documents to deliveries, one per subscribed endpoint;
- ``endpoints``: owners' endpoints, their secrets and rotation, the per-owner cap;
- ``deliveries``: deliveries, claimed under leases, with their attempts;
- ``sender``, ``addresses``, ``signing``: one attempt over HTTP, where it may go, its signature;
- ``schedule``: the retry schedule; ``config``: the numbers; ``notifier``: the worker.

May import ``orchestration.cooking`` and every package below it. See docs/webhooks.md.
"""
