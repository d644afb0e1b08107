"""Authentication: who a request is (principals), key hashing, allow-lists.

``keys`` holds the key-level pieces (``read_token``, ``hash_key``, ``KeyInfo``) and the synchronous
config-only ``Authenticator`` the shell has used so far; ``resolver`` holds the async
``PrincipalResolver`` (cached, with a pluggable ``KeyLookup``) the pipeline authenticates through.
The public names of the former ``relaygate.auth`` module are importable from here unchanged.
"""

from relaygate.auth.keys import Authenticator, KeyInfo, access_groups, hash_key, read_token
from relaygate.auth.resolver import (
    ANONYMOUS,
    ChainedLookup,
    ConfigKeys,
    KeyLookup,
    Principal,
    PrincipalKind,
    PrincipalResolver,
    TTLCache,
)
from relaygate.auth.store_keys import KeyStoreDown, StoreKeys

__all__ = ["ANONYMOUS", "Authenticator", "ChainedLookup", "ConfigKeys", "KeyInfo", "KeyLookup", "KeyStoreDown",
           "Principal", "PrincipalKind", "PrincipalResolver", "StoreKeys", "TTLCache", "access_groups", "hash_key",
           "read_token"]
