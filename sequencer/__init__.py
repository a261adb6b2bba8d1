"""seqrisk's sequencer package: the stream protocol, the journal and the sequencer service.

Every other package imports the protocol from here.
"""

from sequencer.codes import Anomaly, LimitType, RefuseReason, ResultCode
from sequencer.protocol import (
    HEADER_SIZE,
    RECORD_DTYPE,
    RECORD_SIZE,
    FrameError,
    FrameHeader,
    FrameType,
    Kind,
    Side,
    decode_frame,
    empty_records,
    encode_frame,
)
from sequencer.registry import Instrument, Registry, RegistryError, default_registry

__version__ = "0.1.0"

__all__ = [
    "Anomaly",
    "FrameError",
    "FrameHeader",
    "FrameType",
    "HEADER_SIZE",
    "Instrument",
    "Kind",
    "LimitType",
    "RECORD_DTYPE",
    "RECORD_SIZE",
    "RefuseReason",
    "Registry",
    "RegistryError",
    "ResultCode",
    "Side",
    "__version__",
    "decode_frame",
    "default_registry",
    "empty_records",
    "encode_frame",
]

# Service-side API, imported lazily so `import sequencer` stays free of zmq and the journal.
_LAZY = {
    "Producer": "sequencer.producer",
    "producer_id_for": "sequencer.producer",
    "Sequencer": "sequencer.service",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sequencer' has no attribute {name!r}")
