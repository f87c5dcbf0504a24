"""Tyk's ``tyk`` package as Tyk-style Python plugins import it (``from tyk.decorators import *``).

Plugin code sees this package under the plain name ``tyk`` only through its module namespace
(``plugin_drivers/python/namespace.py``); nothing is registered as ``tyk`` in ``sys.modules``.
"""
