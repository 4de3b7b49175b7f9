"""The spawn backends, one module per key.

The registry (``spawn/_spawn.py``) names each backend's spawn function by
module and name and imports it on first use, so a process imports only the
backends it spawns with.
"""
