"""Multi-device sync: hybrid logical clock, LWW registers, OR-Set watchlist, persisted ops.

Pure CRDT modules (:mod:`clock`, :mod:`lww`, :mod:`orset`, :mod:`document`), the service
(:mod:`service`, over :mod:`store`), the recommender signals (:mod:`signals`) and a client
with an offline queue (:mod:`client`, imported on its own: it needs ``httpx``).
"""

from sona.sync.clock import ClockError, HybridLogicalClock, Timestamp
from sona.sync.document import OP_KINDS, Operation, OpKind, SyncDocument, completion
from sona.sync.lww import LWWRegister, merge_lww
from sona.sync.orset import ORSet
from sona.sync.service import PullResult, PushResult, SyncConfig, SyncError, SyncService
from sona.sync.signals import SignalConfig, SignalSink, viewing_events
from sona.sync.store import Device, StoredOperation, SyncStore

__all__ = [
    "OP_KINDS", "ClockError", "Device", "HybridLogicalClock", "LWWRegister", "ORSet",
    "OpKind", "Operation", "PullResult", "PushResult", "SignalConfig", "SignalSink",
    "StoredOperation", "SyncConfig", "SyncDocument", "SyncError", "SyncService", "SyncStore",
    "Timestamp", "completion", "merge_lww", "viewing_events",
]
