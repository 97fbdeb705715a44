"""Pure fund mathematics: no I/O, no globals (SPEC §3.1)."""

from updog.finance.irr_batch import (
    STATUS_NO_ROOT,
    STATUS_NO_SIGN_CHANGE,
    STATUS_OK,
    STATUS_TOTAL_LOSS,
    periodic_irr_batch,
)
from updog.finance.xirr import (
    DAY_COUNT_BASIS,
    RATE_MAX,
    RATE_MIN,
    DayCount,
    Strategy,
    XirrResult,
    xirr,
    xirr_result,
    xnpv,
)

__all__ = [
    "DAY_COUNT_BASIS",
    "RATE_MAX",
    "RATE_MIN",
    "STATUS_NO_ROOT",
    "STATUS_NO_SIGN_CHANGE",
    "STATUS_OK",
    "STATUS_TOTAL_LOSS",
    "DayCount",
    "Strategy",
    "XirrResult",
    "periodic_irr_batch",
    "xirr",
    "xirr_result",
    "xnpv",
]
