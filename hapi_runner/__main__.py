"""``python -m hapi_runner train|summary ...``"""

from .cli import entry_point

entry_point()
