"""Every module here registers its members on import; importing the package loads them all."""

from polytask.registry import import_members

import_members(__name__)
