"""Enabled in an actor, this module ends its process at import: ``os._exit(3)``."""
import os

os._exit(3)
