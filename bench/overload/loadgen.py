"""A load generator that behaves like people, on asyncio + aiohttp (Debian's
python3-aiohttp).

Why not wrk + Lua: wrk keeps a fixed number of connections busy (a closed
loop), so it cannot make visitors *arrive* at a given rate whatever the
server does, and a multi-step visit (form, login with the form's token,
pages with think time, logout) per simulated person with its own cookies is
awkward in its per-thread Lua. asyncio runs thousands of such people in one
process, each a coroutine with its own cookie jar, and records every request.

Two populations:
  * logged-in users, present from the start: they log in before the
    measurement and then browse (a page, sometimes the heavy report) with an
    exponential think time;
  * new visitors arriving as a Poisson process whose rate follows the load
    profile: login form, login, a few pages with think time, logout. A
    visitor refused (503) or failed leaves.

Every request is recorded: time since the start, class ("logged-in" once the
person has logged in, "new" before), page, HTTP status, outcome, latency,
node that answered.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import aiohttp

CSRF = re.compile(rb'name="csrf" value="([0-9a-f]+)"')
REPORT_SHARE = 0.1          # share of the logged-in pages that are the heavy report
VISITOR_PAGES = (2, 4)      # pages a new visitor reads between login and logout
# What a visit costs, in the unit of the capacity (a logged-in page): its
# login and its pages query the database; the form and the logout do not.
PAGES_PER_VISIT = 1 + sum(VISITOR_PAGES) / 2

# X-Request-Id of every request of the process: unique in a load balancer's log.
REQUEST_IDS = itertools.count(1)

# Outcomes.
OK, SHED, ERROR_5XX, TIMEOUT, FAILED, LOST, CLIENT = "ok", "shed", "5xx", "timeout", "failed", "lost", "4xx"


@dataclass
class Record:
    t: float            # seconds since the start of the run, when sent
    cls: str            # "logged-in" or "new"
    page: str
    status: int         # 0 when no HTTP answer
    outcome: str
    latency_ms: float
    node: str
    degraded: bool = False
    # Diagnostics of requests without an answer: the exception's class, and
    # whether the request went out on a keep-alive connection reused from the
    # pool (1) or a new one (0). request_id is sent as X-Request-Id, which
    # HAProxy logs: a request absent from its log never reached it.
    error: str = ""
    reused: int = -1
    request_id: int = 0


def classify(status: int, retry_after: bool, page: str) -> str:
    if status in (503, 429) and retry_after:
        return SHED
    if status >= 500:
        return ERROR_5XX
    if status == 302 and page != "/login.php":
        return LOST      # the session is gone: sent to the login form
    if status >= 400:
        return CLIENT
    return OK


@dataclass
class Person:
    cookies: dict[str, str] = field(default_factory=dict)
    login: str = ""


class Site:
    """One aiohttp session (keep-alive connections to the load balancer), the
    cookies handled per person. Like a browser's, a connection is reused for
    the next request whoever makes it; unlike a browser, a request that
    fails on a reused connection is not sent again."""

    def __init__(self, base_url: str, host: str, timeout: float, t0: float | None = None):
        self.base_url = base_url
        self.host = host
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.records: list[Record] = []
        self.t0 = t0 if t0 is not None else time.monotonic()
        self.recording = True
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Site":
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, enable_cleanup_closed=True)
        trace = aiohttp.TraceConfig()

        async def reused(_session, context, _params) -> None:
            context.trace_request_ctx["reused"] = 1

        async def created(_session, context, _params) -> None:
            context.trace_request_ctx["reused"] = 0

        trace.on_connection_reuseconn.append(reused)
        trace.on_connection_create_end.append(created)
        self.session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                             auto_decompress=False, trace_configs=[trace])
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.session is not None
        await self.session.close()

    async def request(self, person: Person, method: str, page: str, cls: str,
                      data: dict[str, str] | None = None) -> tuple[str, bytes]:
        assert self.session is not None
        request_id = next(REQUEST_IDS)
        headers = {"Host": self.host, "User-Agent": "coupecircuit-overload", "X-Request-Id": str(request_id)}
        connection = {"reused": -1}
        error = ""
        if person.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in person.cookies.items())
        sent = time.monotonic()
        status, node, body, retry_after = 0, "-", b"", False
        try:
            async with self.session.request(method, self.base_url + page, headers=headers, data=data,
                                            allow_redirects=False, timeout=self.timeout,
                                            trace_request_ctx=connection) as reply:
                body = await reply.read()
                status = reply.status
                node = reply.headers.get("X-Node", "lb")
                retry_after = "Retry-After" in reply.headers
                for value in reply.headers.getall("Set-Cookie", []):
                    name, _, rest = value.partition("=")
                    cookie_value = rest.split(";", 1)[0]
                    if cookie_value in ("", "deleted"):
                        person.cookies.pop(name.strip(), None)
                    else:
                        person.cookies[name.strip()] = cookie_value
            outcome = classify(status, retry_after, page)
        except asyncio.TimeoutError:
            outcome = TIMEOUT
        except (aiohttp.ClientError, OSError) as failure:
            outcome = FAILED
            error = type(failure).__name__
        received = time.monotonic()
        if self.recording:
            self.records.append(Record(round(sent - self.t0, 4), cls, page.split("?", 1)[0], status, outcome,
                                       round((received - sent) * 1000, 2), node,
                                       degraded=b"indisponible pendant la charge" in body, error=error,
                                       reused=connection["reused"], request_id=request_id))
        return outcome, body

    async def log_in(self, person: Person, login: str, cls: str) -> bool:
        person.login = login
        outcome, body = await self.request(person, "GET", "/login.php", cls)
        match = CSRF.search(body)
        if outcome != OK or match is None:
            return False
        number = login.removeprefix("user")
        outcome, _ = await self.request(person, "POST", "/login.php", cls,
                                        data={"csrf": match.group(1).decode(), "login": login,
                                              "password": f"secret{number}"})
        return outcome == OK


def logged_in_page(rng: random.Random) -> str:
    if rng.random() < REPORT_SHARE:
        return "/report.php"
    return f"/page.php?c={rng.randrange(50)}"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


# ---------------------------------------------------------------- capacity

async def measure_capacity(base_url: str, host: str, clients: int, seconds: float, timeout: float,
                           seed: int = 1) -> dict:
    """Closed loop: `clients` logged-in users with no think time read the
    logged-in pages for `seconds`; capacity = successful requests per second
    after a one-second warm-up. `clients` stays below the database's
    connection limit, so this is the site's throughput before anything fails."""
    rng = random.Random(seed)
    async with Site(base_url, host, timeout) as site:
        site.recording = False
        people = [Person() for _ in range(clients)]
        for start in range(0, clients, 8):
            logged = await asyncio.gather(*(site.log_in(p, f"user{19000 + start + i}", "setup")
                                            for i, p in enumerate(people[start:start + 8])))
            if not all(logged):
                raise RuntimeError(f"capacity: {logged.count(False)} logins failed")
        start = time.monotonic()
        site.t0 = start
        site.recording = True
        end = start + seconds

        async def loop(person: Person) -> None:
            while time.monotonic() < end:
                await site.request(person, "GET", logged_in_page(rng), "logged-in")

        await asyncio.gather(*(loop(p) for p in people))
        for person in people:
            await site.request(person, "GET", "/logout.php", "setup")
    window = [r for r in site.records if r.t >= 1.0 and r.t + r.latency_ms / 1000 <= seconds]
    ok = [r for r in window if r.outcome == OK]
    span = seconds - 1.0
    return {"clients": clients, "seconds": seconds, "rps": len(ok) / span,
            "errors": sum(1 for r in window if r.outcome != OK),
            "p50_ms": percentile([r.latency_ms for r in ok], 50), "p99_ms": percentile([r.latency_ms for r in ok], 99)}


# ---------------------------------------------------------------- the scenario

@dataclass
class Profile:
    """The offered load over time, in multiples of the measured capacity."""
    base: float
    up: float
    peak: float
    down: float
    cool: float
    low: float = 0.5
    high: float = 3.0

    @property
    def duration(self) -> float:
        return self.base + self.up + self.peak + self.down + self.cool

    def multiple(self, t: float) -> float:
        low, high = self.low, self.high
        if t < self.base:
            return low
        t -= self.base
        if t < self.up:
            return low + (high - low) * t / self.up
        t -= self.up
        if t < self.peak:
            return high
        t -= self.peak
        if t < self.down:
            return high - (high - low) * t / self.down
        return low

    def crossing_up(self, level: float = 1.0) -> float:
        return self.base + self.up * (level - self.low) / (self.high - self.low)

    def crossing_down(self, level: float = 1.0) -> float:
        return self.base + self.up + self.peak + self.down * (self.high - level) / (self.high - self.low)


async def run_scenario(base_url: str, host: str, profile: Profile, capacity_rps: float, think: float,
                       base_users: int, timeout: float, sample: Callable[[], dict] | None = None,
                       events: dict[float, Callable[[], None]] | None = None, seed: int = 7) -> dict:
    """Runs the people against the site; returns the records, one sample per
    second (load, people logged in, whatever `sample` returns) and the
    parameters. `events`: callbacks run once at given times (e.g. kill a
    helper)."""
    rng = random.Random(seed)
    base_rate = base_users / think
    async with Site(base_url, host, timeout) as site:
        site.recording = False
        users = [Person() for _ in range(base_users)]
        # Log the users in a few at a time, before the measurement starts.
        for start in range(0, base_users, 10):
            batch = users[start:start + 10]
            done = await asyncio.gather(*(site.log_in(p, f"user{start + i + 1}", "setup")
                                          for i, p in enumerate(batch)))
            if not all(done):
                raise RuntimeError(f"{done.count(False)} logged-in users could not log in before the run")
        site.t0 = time.monotonic()
        site.recording = True
        end = site.t0 + profile.duration
        state = {"logged_in": base_users, "visitors": 0, "visitor_seq": 0}
        tasks: set[asyncio.Task] = set()

        def spawn(coroutine) -> None:
            task = asyncio.create_task(coroutine)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def think_pause() -> None:
            await asyncio.sleep(rng.expovariate(1.0 / think))

        async def user(person: Person) -> None:
            # Spread the first requests over one think time.
            await asyncio.sleep(rng.uniform(0, think))
            while time.monotonic() < end:
                outcome, _ = await site.request(person, "GET", logged_in_page(rng), "logged-in")
                if outcome == LOST:     # logged out by the site: log in again
                    state["logged_in"] -= 1
                    if await site.log_in(person, person.login, "logged-in"):
                        state["logged_in"] += 1
                await think_pause()

        async def visitor(number: int) -> None:
            person = Person()
            state["visitors"] += 1
            try:
                outcome, body = await site.request(person, "GET", "/login.php", "new")
                match = CSRF.search(body)
                if outcome != OK or match is None:
                    return
                await asyncio.sleep(rng.uniform(0.3, 1.0))
                login = f"user{1000 + number % 18000}"
                outcome, _ = await site.request(person, "POST", "/login.php", "new",
                                                data={"csrf": match.group(1).decode(), "login": login,
                                                      "password": f"secret{1000 + number % 18000}"})
                if outcome != OK:
                    return
                state["logged_in"] += 1
                try:
                    for _ in range(rng.randint(*VISITOR_PAGES)):
                        await think_pause()
                        outcome, _ = await site.request(person, "GET", logged_in_page(rng), "logged-in")
                        if outcome == LOST:
                            return
                    await think_pause()
                    await site.request(person, "GET", "/logout.php", "logged-in")
                finally:
                    state["logged_in"] -= 1
            finally:
                state["visitors"] -= 1

        def visitor_rate(t: float) -> float:
            return max(0.0, profile.multiple(t) * capacity_rps - base_rate) / PAGES_PER_VISIT

        async def arrivals() -> None:
            while True:
                t = time.monotonic() - site.t0
                if t >= profile.duration:
                    return
                rate = visitor_rate(t)
                if rate <= 0:
                    await asyncio.sleep(0.05)
                    continue
                await asyncio.sleep(rng.expovariate(rate))
                state["visitor_seq"] += 1
                spawn(visitor(state["visitor_seq"]))

        samples: list[dict] = []
        pending_events = sorted((events or {}).items())

        async def sampler() -> None:
            second = 0
            while second <= profile.duration:
                target = site.t0 + second
                await asyncio.sleep(max(0.0, target - time.monotonic()))
                while pending_events and pending_events[0][0] <= second:
                    _, callback = pending_events.pop(0)
                    await asyncio.get_running_loop().run_in_executor(None, callback)
                with open("/proc/loadavg", encoding="ascii") as file:
                    load1 = float(file.read().split()[0])
                row = {"t": second, "load1": load1, "logged_in": state["logged_in"],
                       "visitors": state["visitors"], "multiple": profile.multiple(second)}
                if sample is not None:
                    row.update(await asyncio.get_running_loop().run_in_executor(None, sample))
                samples.append(row)
                second += 1

        for person in users:
            spawn(user(person))
        await asyncio.gather(arrivals(), sampler())
        # People still in a request finish it (bounded by the timeout).
        if tasks:
            await asyncio.wait(set(tasks), timeout=timeout + 2)
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        site.recording = False
    return {"records": site.records, "samples": samples, "base_users": base_users, "think": think,
            "capacity_rps": capacity_rps, "duration": profile.duration}


def records_to_rows(records: list[Record]) -> list[list]:
    return [[r.t, r.cls, r.page, r.status, r.outcome, r.latency_ms, r.node, int(r.degraded), r.error, r.reused,
             r.request_id] for r in records]


RECORD_HEADER = ["t", "class", "page", "status", "outcome", "latency_ms", "node", "degraded", "error", "reused",
                 "request_id"]


def dump_json(path, document) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=1)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
