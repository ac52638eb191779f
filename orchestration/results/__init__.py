"""What a collection's cooks produced, read back: exports as ZIPs of images and ERC-721
metadata (``exports``, ``export_archive``), the files a piece names (``assets``) and the
collection's analytics (``analytics``).

May import ``orchestration.cooking`` and every package below it.
"""
