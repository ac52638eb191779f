"""Stored files: the content-addressed ``MediaStore`` interface and its file-system store
(``media``), the GridFS store (``gridfs_media``), the collector of unnamed files (``media_gc``)
and moving every file between stores (``media_migrate``).

A file is named by its SHA-256 and is whole or absent. May import ``orchestration.art``,
``orchestration.base`` and ``domain``.
"""
