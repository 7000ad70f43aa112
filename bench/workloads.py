"""What the benchmark sends, at which concurrency, and the targets each row is held to.

Requests carry fixed dates (no ``{now}``), so every run sends the same bytes.  The write
path gives each connection its own patron and item through ``{c}`` (see benchdata.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOGIN = "9300CNsc1|COpass1|CPMAIN|"
DATE = "20260101    120000"
NO_DATE = " " * 18

REQUESTS: dict[str, tuple[str, ...]] = {
    "99": ("9900302.00",),
    # demo patrons in good standing, with their PINs: a self-check verifying a patron
    "63": tuple(f"63001{DATE}{' ' * 10}AOMAIN|AA{patron}|AC|AD{pin}|"
                for patron, pin in (("100001", "1234"), ("djfiander", "6789"), ("miker", "6789"))),
    "17": tuple(f"17{DATE}AOMAIN|AB{item}|AC|" for item in ("200001", "200002", "1565921879", "0440242746", "660")),
    # checkout then checkin of the connection's own item by its own patron
    "11+09": (f"11NN{DATE}{NO_DATE}AOMAIN|AABENCHP{{c}}|ABBENCHI{{c}}|AC|",
              f"09N{DATE}{DATE}APMAIN|AOMAIN|ABBENCHI{{c}}|AC|"),
    # the login storm: what is timed is every connection's 93 (LOGIN); one of them then sends 99s
    "93": ("9900302.00",),
}

#: the replies that are right from the gateway; ``121`` and ``101`` also count the oks
EXPECTED = {"99": "98", "63": "64", "17": "18", "11+09": "121,101", "93": "98"}
#: the ceiling answers everything with its 98
CEILING_EXPECTED = "98"

LABELS = {"99": "99 status", "63": "63 patron info", "17": "17 item info", "11+09": "11+09 checkout+checkin",
          "93": "93 login storm, cold cache"}


@dataclass(frozen=True)
class Target:
    """One figure a row must reach.  ``kind``: share_min (ours/ceiling rate), rate_min
    (ours, req/s), p50_max_us, p99_max_us, rss_max_mb, ratio_min (ours rate over the rate
    of row ``ref``), cold_ratio_max (a login storm's time on a cold cache over its time on
    a warm one), ref_share_min (ours rate over the rate of row ``ref``: a front gateway's
    over the back's alone), p99_hop_max_us (ours p99 minus that of the runs on the gateway
    alone paired with ours, or row ``ref``'s: what the hop through a front gateway adds)."""

    kind: str
    limit: float
    ref: str | None = None

    def describe(self) -> str:
        if self.kind == "share_min":
            return f"share>={self.limit:.0%}"
        if self.kind == "rate_min":
            return f"ours>={self.limit:,.0f}/s"
        if self.kind == "p50_max_us":
            return f"p50<={self.limit / 1000:g}ms"
        if self.kind == "p99_max_us":
            return f"p99<={self.limit / 1000:g}ms"
        if self.kind == "rss_max_mb":
            return f"RSS<={self.limit:g}MB"
        if self.kind == "ratio_min":
            return f">={self.limit:.0%} of {self.ref}"
        if self.kind == "cold_ratio_max":
            return f"cold<={self.limit:g}x warm"
        if self.kind == "ref_share_min":
            return f">={self.limit:.0%} of {self.ref}"
        if self.kind == "p99_hop_max_us":
            return f"p99<={self.ref or 'alone'}+{self.limit / 1000:g}ms"
        raise ValueError(f"unknown target kind {self.kind!r}")

    def show(self, value: float) -> str:
        """A measured value in the target's unit."""
        if self.kind in ("share_min", "ratio_min", "ref_share_min"):
            return f"{value:.0%}"
        if self.kind == "rate_min":
            return f"{value:,.0f}/s"
        if self.kind in ("p50_max_us", "p99_max_us", "p99_hop_max_us"):
            return f"{value / 1000:.3f} ms"
        if self.kind == "rss_max_mb":
            return f"{value:.0f} MB"
        if self.kind == "cold_ratio_max":
            return f"{value:.2f}x"
        raise ValueError(f"unknown target kind {self.kind!r}")


@dataclass(frozen=True)
class Workload:
    key: str
    request: str           # a key of REQUESTS
    conns: int
    seconds: float
    rate: float | None = None
    idle: int = 0
    repeats: int = 1       # the row reports the median of this many runs
    targets: tuple[Target, ...] = field(default=())
    #: a login storm: every connection logs in at once on a fresh gateway, then again (warm)
    storm: bool = False
    #: the gateway's door the load goes through: "sip" (plain TCP, loadgen), "tls" (the TLS
    #: socket door) or "https" (the http door's Wise tunnel), the last two driven by tlsload
    door: str = "sip"
    #: against a second gateway with the admin listener on, /metrics scraped every second
    admin: bool = False
    #: through a front gateway forwarding to the gateway under test (no ceiling run)
    front: bool = False
    #: the row run beside this one (the same workload on the gateway alone)
    beside: str | None = None
    #: (front rows) each run through the front follows a run of the same load on the gateway
    #: alone, and the hop is judged against those: both see the machine of the same seconds
    paired: bool = False
    #: worker processes of the gateway measured (--workers); 1: the single-process gateway
    workers: int = 1
    #: against a gateway whose database is PostgreSQL (a server the bench starts: tests/pgserver.py)
    postgresql: bool = False

    @property
    def label(self) -> str:
        label = LABELS[self.request]
        if self.rate:
            label += f" paced {self.rate:,.0f}/s"
        if self.idle:
            label += f" +{self.idle:,} idle"
        elif self.key.endswith("-noidle"):
            label += " no idle"
        if self.door != "sip":
            label += f" over {self.door.upper()}"
        if self.admin:
            label += ", admin+metrics"
        if self.front:
            label += " via front"
        if self.workers > 1:
            label += f", {self.workers} workers"
        if self.postgresql:
            label += " on PostgreSQL"
        return label

    @property
    def writes(self) -> bool:
        return self.request == "11+09"


@dataclass(frozen=True)
class Durations:
    """Seconds per run.  Closed-loop rows alternate ours and the ceiling ``closed_repeats``
    times and report medians, so a burst of other work on the machine does not decide a row."""

    closed: float
    closed_repeats: int
    paced: float
    idle: float


DEFAULT = Durations(closed=2.0, closed_repeats=3, paced=4.0, idle=6.0)
QUICK = Durations(closed=1.0, closed_repeats=1, paced=1.0, idle=2.0)
IDLE_CONNECTIONS = 10_000
PACED_RATE = 10_000.0
STORM_CONNECTIONS = 10_000
#: connections of the login storm connecting or logging in at any moment: all of them would
#: overflow the listen queue (backlog 1024), and the kernel's retries would be what is timed
STORM_WINDOW = 1_000

#: the targets, by workload key (the share targets are at 10 connections; the write
#: path's at 100, where group commit has something to group)
TARGETS: dict[str, tuple[Target, ...]] = {
    "99-c10": (Target("share_min", 0.50),),
    "17-c10": (Target("share_min", 0.40),),
    "63-c10": (Target("share_min", 0.35),),
    "11+09-c100": (Target("rate_min", 5000.0),),
    "99-paced": (Target("p50_max_us", 1000.0), Target("p99_max_us", 10_000.0)),
    "99-idle": (Target("rss_max_mb", 150.0), Target("ratio_min", 0.80, ref="99-noidle")),
    "93-storm": (Target("cold_ratio_max", 2.0),),
    # the http door's Wise tunnel beside the TLS socket door, both on keep-alive TLS connections
    "63-https-c10": (Target("ratio_min", 0.50, ref="63-tls-c10"),),
    # the admin listener and its metrics (a gateway observer) cost at most 10 % (issue 13)
    "99-c10-admin": (Target("ratio_min", 0.90, ref="99-c10"),),
    "11+09-c100-admin": (Target("ratio_min", 0.90, ref="11+09-c100"),),
    # a front gateway (--acs sip2://, pass-through) in front of the gateway under test
    "63-front-c10": (Target("ref_share_min", 0.40, ref="63-c10"),),
    "17-front-paced": (Target("p99_hop_max_us", 1000.0),),  # against its paired runs on the gateway alone
    # on 2 cores, where the load generator takes part of the second one
    "99-c100-w2": (Target("ratio_min", 1.25, ref="99-c100"),),
}
#: the rows run again with the admin listener on, each right after itself
ADMIN_ROWS = ("99-c10", "11+09-c100")
#: the hop-latency rows' pace (requests/s over 10 connections)
HOP_RATE = 2_000.0
#: pairs of runs (alone, through the front) for the hop: the p99 of one 4-s paced run on a
#: small shared machine spreads widely (0.3-1.6 ms alone), so the median of five is judged
HOP_REPEATS = 5
#: the worker-process rows: the same requests on a gateway started with --workers 2, each
#: beside the same row on one process (run with it; the scaling ratio under the table)
WORKER_ROWS = (("99", 10), ("99", 100), ("63", 10), ("63", 100))


def plan(durations: Durations = DEFAULT, only: set[str] | None = None) -> list[Workload]:
    """Every workload in the order run (the no-idle row before the idle one it is compared with)."""
    workloads = [Workload(f"{request}-c{conns}{admin}", request, conns, durations.closed,
                          repeats=durations.closed_repeats, targets=TARGETS.get(f"{request}-c{conns}{admin}", ()),
                          admin=bool(admin))
                 for request in ("99", "63", "17", "11+09") for conns in (1, 10, 100)
                 for admin in ("", "-admin") if not admin or f"{request}-c{conns}" in ADMIN_ROWS]
    workloads += [Workload(f"{request}-c{conns}-w2", request, conns, durations.closed, repeats=durations.closed_repeats,
                           targets=TARGETS.get(f"{request}-c{conns}-w2", ()), workers=2,
                           beside=f"{request}-c{conns}")
                  for request, conns in WORKER_ROWS]
    # the write path on PostgreSQL, beside the same row on SQLite
    workloads.append(Workload("11+09-c100-pg", "11+09", 100, durations.closed, repeats=durations.closed_repeats,
                              postgresql=True, beside="11+09-c100"))
    workloads.append(Workload("99-paced", "99", 100, durations.paced, rate=PACED_RATE, repeats=3,
                              targets=TARGETS["99-paced"]))
    workloads.append(Workload("99-noidle", "99", 10, durations.idle))
    workloads.append(Workload("99-idle", "99", 10, durations.idle, idle=IDLE_CONNECTIONS, targets=TARGETS["99-idle"]))
    for door in ("tls", "https"):
        workloads.append(Workload(f"63-{door}-c10", "63", 10, durations.closed, repeats=durations.closed_repeats,
                                  targets=TARGETS.get(f"63-{door}-c10", ()), door=door))
    workloads += front_workloads(durations)
    workloads.append(Workload("93-storm", "93", STORM_CONNECTIONS, 0.1, targets=TARGETS["93-storm"], storm=True))
    if only:
        unknown = only - {w.key for w in workloads}
        if unknown:
            raise ValueError(f"unknown workload {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(w.key for w in workloads)}")
        # a row compared with another runs with it: the comparison is within one run
        only = only | {w.beside for w in workloads if w.key in only and w.beside}
        workloads = [w for w in workloads if w.key in only]
    return workloads


def front_workloads(durations: Durations) -> list[Workload]:
    """63 and checkout+checkin through a front gateway beside the back alone (63-c10,
    11+09-c10), and 17 paced at HOP_RATE both ways: what the hop costs."""
    closed = {"seconds": durations.closed, "repeats": durations.closed_repeats}
    paced = {"seconds": durations.paced, "repeats": 3, "rate": HOP_RATE}
    return [Workload("63-front-c10", "63", 10, front=True, beside="63-c10", targets=TARGETS["63-front-c10"], **closed),
            Workload("11+09-front-c10", "11+09", 10, front=True, beside="11+09-c10", **closed),
            Workload("17-paced", "17", 10, **paced),
            Workload("17-front-paced", "17", 10, front=True, beside="17-paced", targets=TARGETS["17-front-paced"],
                     paired=True, **{**paced, "repeats": HOP_REPEATS})]


def write_connections(workloads: list[Workload]) -> int:
    """How many bench patrons and items the write workloads need (each run uses fresh ones)."""
    return sum(w.conns * w.repeats for w in workloads if w.writes)
