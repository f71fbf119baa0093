"""Q.850 cause classification for the network effectiveness ratio (NER, ITU-T E.411/E.425 style).

NER counts a call as effective when the network delivered it to the called user, whatever the user did. So the
user-side outcomes are *not* failures: 1 unallocated number, 16/31 normal, 17 busy, 18/19 no answer, 20
absent, 21/29 rejected, 22 number changed, 26 answered elsewhere, 28 invalid number format, and the
subscription/ authorization causes 50/52/54/57 (account barring, not network). Network failures are the
routing, congestion, resource, interworking and protocol causes below. Without a numeric cause
(``"indefinido"``, null) the provider's final status decides: ``congestionado``, ``falha`` and
``desconhecido`` are network failures.
"""

from __future__ import annotations

NETWORK_FAILURE_CAUSES: frozenset[int] = frozenset(
    {
        2,
        3,
        4,
        6,
        7,
        8,  # no route, wrong prefix, channel unacceptable/pre-empted
        27,  # destination out of order
        34,
        38,
        41,
        42,
        44,
        47,  # no circuit, network out of order, temporary failure, congestion, resources
        58,
        63,
        65,
        66,
        69,
        79,
        88,  # bearer/service not available or not implemented, incompatible destination
        95,
        96,
        97,
        98,
        99,
        100,
        101,
        102,
        111,  # message/protocol errors, recovery on timer expiry
        127,  # interworking
    }
)
NETWORK_FAILURE_STATUSES: frozenset[str] = frozenset({"congestionado", "falha", "desconhecido"})


def is_network_failure(code: int | None, final_status: str | None) -> bool:
    if code is not None:
        return code in NETWORK_FAILURE_CAUSES
    return final_status in NETWORK_FAILURE_STATUSES
