"""target-stitch-import: a Singer target for the Stitch Import API."""

from target_stitch_import.__version__ import __version__

__all__ = ["__version__"]
