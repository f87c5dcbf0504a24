"""The entry file when this folder is a Tyk bundle (or a plugin folder given as ``path``).

Tyk finds hooks among the module's ``@Hook`` objects by their function's name, so importing them
here is enough. Each file also works alone: give its own path in an API definition.
"""

from add_headers import add_headers  # noqa: F401
from rewrite_response import wrap_response  # noqa: F401
from token_auth import authenticate, tag_user  # noqa: F401
from validate_order import validate_order  # noqa: F401
