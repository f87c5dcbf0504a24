"""Tyk's plugin decorators (``from tyk.decorators import *``).

Same names and attributes as Tyk's ``coprocess/python/tyk/decorators.py``: every decorator object
keeps the function (``f``) and its ``__name__`` (``name``, the name a manifest refers to). Only
:class:`Hook` is dispatched: the driver picks the call from ``arg_count``, the number of
positional parameters (3, 4 or 5). The legacy ``Pre``, ``Post``, ``PostKeyAuth`` and
``CustomKeyCheck`` objects, which Tyk registers but cannot call (they lack ``arg_count``), are
refused at load time with a message saying so; ``Event`` handlers are never called by Tyk's
Python driver, nor here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["CustomKeyCheck", "Event", "HandlerDecorator", "Hook", "Post", "PostKeyAuth", "Pre"]


class HandlerDecorator:
    """Base of the legacy decorators."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.name: str = f.__name__
        self.f = f

    def __call__(self, *args: Any) -> Any:
        return self.f(*args)


class Hook:
    """A request or response hook; called as ``f(request, session, spec)``,
    ``f(request, session, metadata, spec)`` or ``f(request, response, session, metadata, spec)``
    depending on how many positional parameters ``f`` declares."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.name: str = f.__name__
        self.f = f
        self.arg_count: int = len(inspect.getfullargspec(f).args)

    def __call__(self, *args: Any) -> Any:
        return self.f(*args)


class Pre(HandlerDecorator):
    """Legacy; use :class:`Hook`."""


class Post(HandlerDecorator):
    """Legacy; use :class:`Hook`."""


class PostKeyAuth(HandlerDecorator):
    """Legacy; use :class:`Hook`."""


class CustomKeyCheck(HandlerDecorator):
    """Legacy; use :class:`Hook`."""


class Event(HandlerDecorator):
    """An event handler ``f(event, spec)`` (not dispatched by Tyk's Python driver)."""


#: Every decorator class: a module-level object of one of these types is a Tyk handler.
HANDLER_TYPES: tuple[type, ...] = (Hook, Pre, Post, PostKeyAuth, CustomKeyCheck, Event)
