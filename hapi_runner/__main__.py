"""``python -m hapi_runner train|summary ...``"""

from .cli.app import entry_point

entry_point()
