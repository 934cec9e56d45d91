"""wesog_async: the asyncio client for the Wesog image-search API.

Start with :class:`WesogClient`::

    async with WesogClient(api_key="...") as client:
        fut = await client.images.create({"id": "img1", "src": "https://..."})
        op = await fut
"""

from importlib.metadata import PackageNotFoundError, version

from wesog_async._client import WesogClient
from wesog_async._convert import unstructure
from wesog_async._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    ConnectError,
    InvalidInputError,
    NotFoundError,
    OperationError,
    OperationFailedError,
    OperationNotFoundError,
    OperationTimeoutError,
    OutcomeUnknownError,
    RateLimitError,
    ResponseTooLargeError,
    ResponseValidationError,
    ServerError,
    TransportError,
    WesogError,
)
from wesog_async._future import OperationFuture, as_completed, gather_operations
from wesog_async._http import BodyLimits
from wesog_async._models import (
    UNSET,
    Image,
    ImageInput,
    Operation,
    OperationItemError,
    OperationMethod,
    OperationResource,
    SearchPage,
    TagResult,
)
from wesog_async._outcome import Proof, prove
from wesog_async._retry import PollPolicy, RetryPolicy
from wesog_async.bulk import (
    IngestMode,
    IngestOptions,
    IngestReport,
    IngestStream,
    InvalidRecord,
    Journal,
    JournalBackend,
    JournalMismatchError,
    Outcome,
    Progress,
    RecordError,
    RecordSource,
    ThreadedSource,
    ingest,
    ingest_all,
    open_records,
)

try:
    __version__ = version("wesog-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "UNSET",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "BodyLimits",
    "ClientClosedError",
    "ConflictError",
    "ConnectError",
    "Image",
    "ImageInput",
    "IngestMode",
    "IngestOptions",
    "IngestReport",
    "IngestStream",
    "InvalidInputError",
    "InvalidRecord",
    "Journal",
    "JournalBackend",
    "JournalMismatchError",
    "NotFoundError",
    "Operation",
    "OperationError",
    "OperationFailedError",
    "OperationFuture",
    "OperationItemError",
    "OperationMethod",
    "OperationNotFoundError",
    "OperationResource",
    "OperationTimeoutError",
    "Outcome",
    "OutcomeUnknownError",
    "PollPolicy",
    "Progress",
    "Proof",
    "RateLimitError",
    "RecordError",
    "RecordSource",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryPolicy",
    "SearchPage",
    "ServerError",
    "TagResult",
    "ThreadedSource",
    "TransportError",
    "WesogClient",
    "WesogError",
    "__version__",
    "as_completed",
    "gather_operations",
    "ingest",
    "ingest_all",
    "open_records",
    "prove",
    "unstructure",
]


def _public_home() -> None:
    # Public classes report the package as their module (``wesog_async.WesogClient``,
    # not ``wesog_async._client.WesogClient``): what users import is what
    # reprs, tracebacks and the docs show, and pickling still finds them.
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type) and obj.__module__.startswith("wesog_async."):
            obj.__module__ = __name__


_public_home()
