"""One error root for the whole project.

Everything raised on purpose derives from `CqrsError`, so the CLI can print the message and exit
without a traceback, while a bug still shows one. Messages name what was wrong and the fix.
"""


class CqrsError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(CqrsError):
    """A setting or flag has a value that cannot work."""


class NotFound(ConfigError):
    """Nothing of that name exists (a deployment, a pipeline)."""


class SpecError(CqrsError):
    """A pipeline spec is refused before anything starts."""


class BrokerError(CqrsError):
    """The local broker could not be fetched, started or reached."""


class CommandLogError(CqrsError):
    """The command log cannot serve what was asked (missing topic, truncated offsets)."""


class StoreError(CqrsError):
    """The ClickHouse store cannot be opened or used as asked."""


class RecoveryError(CqrsError):
    """A deployment's recovery state is missing or damaged: resuming would skip or redo work."""


class FailedAt(CqrsError):
    """A deployment failed while handling one record (or the batch it starts): a restart redoes
    the same work, so the runtime counts failures at the same place and, after a few, stops and
    names the offset to skip."""

    def __init__(self, partition: int, offset: int, cause: BaseException) -> None:
        super().__init__(
            f"failed at partition {partition} offset {offset}: {type(cause).__name__}: {cause}"
        )
        self.partition = partition
        self.offset = offset


class StuckAt(CqrsError):
    """A deployment failed again and again at the same record: restarting cannot help, and an
    operator decides whether to skip it (the message says how)."""
