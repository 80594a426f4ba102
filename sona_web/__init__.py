"""sona-web: an online-learning engine for LLM routers and chat apps, in numpy.

Public API: :class:`SonaConfig`, :class:`SonaEngine`, :class:`AdaptiveRouter`,
:class:`RouteDecision`, and the text embedders in :mod:`sona_web.embedders`.
"""

import logging

from .config import PRESETS, SonaConfig
from .engine import SonaEngine, SonaEngineBuilder
from .router import AdaptiveRouter, RouteDecision

__all__ = ["PRESETS", "AdaptiveRouter", "RouteDecision", "SonaConfig", "SonaEngine", "SonaEngineBuilder"]
__version__ = "0.1.0"

logging.getLogger("sona_web").addHandler(logging.NullHandler())
