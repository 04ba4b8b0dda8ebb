"""Errors that reach a user as one clear line.

Every error kvmplace raises on purpose derives from :class:`KvmplaceError`;
the CLI prints ``kvmplace: error: <message>`` for it and exits non-zero, and
the RPC layer sends it back to the caller with its message intact.
"""


class KvmplaceError(Exception):
    """Base class: the message is meant for the operator, as is."""

    exit_code = 1


class InvalidInput(KvmplaceError):
    """Input (inventory, CLI argument, RPC argument) is malformed.

    ``field`` is the dotted path of the first wrong field, e.g.
    ``hosts[2].numa[0].cpus``, so the user can find it without guessing.
    """

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        # args stay (field, problem): oslo.messaging rebuilds a remote
        # exception as ``cls(*args)``, so the caller gets InvalidInput with
        # its field, not a RemoteError.
        super().__init__(field, problem)

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}" if self.field else str(self.problem)


class NotFound(KvmplaceError):
    """A named host, instance or migration does not exist."""


class NoValidHost(KvmplaceError):
    """Every candidate host was rejected by a filter."""


class ConfigError(KvmplaceError):
    """The configuration names something that does not exist."""


class DatabaseError(KvmplaceError):
    """The conductor's database could not be read or written (full or
    read-only disk, unreachable server). Defined here, not in the db
    package, so that it reaches an RPC caller as itself: one clear line."""


class MessageAuthFailed(KvmplaceError):
    """The receiver refused a message: unsigned, badly signed, replayed,
    or from a signer it does not take this message from (kvmplace.msgauth).
    Defined here so that it reaches an RPC caller as itself."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)

    def __str__(self) -> str:
        return f'message authentication failed: {self.reason}'
