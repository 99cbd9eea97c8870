"""PostgreSQL for the demo: one cluster in the state folder, run as an unprivileged user.

The cluster holds two databases: ``profiles`` (user-service's data, reached through db-proxy)
and ``prefect`` (the Prefect server's state, reached directly: a game day must never fault its
own orchestrator). It is kept between stacks, like Prefect's history; ``up`` only creates what
is missing.

PostgreSQL refuses to run as root. When the kit runs as root (as CI does), the server runs as
the ``postgres`` user that Debian's package creates, through ``setpriv``; that user must be able
to reach the data folder. A state folder below a 0700 folder (a checkout under ``/root``, a
``mktemp -d`` folder) is out of its reach: then the cluster lives in ``/var/tmp`` instead, in a
folder named after the state folder, and ``up`` says so. The password of role ``gameday`` is
new per cluster, kept in ``postgres.password`` (mode 0600) and handed to clients through the
environment, never on a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gameday.errors import DemoError

#: The role every client of the demo's cluster uses.
ROLE = "gameday"
#: The unprivileged user the server runs as when the kit runs as root.
RUN_AS = "postgres"
#: Databases of the cluster.
DATABASES = ("profiles", "prefect")
#: Profiles seeded into ``profiles``: more than Redis's ``maxmemory`` holds, so it evicts.
USERS = 20_000
PASSWORD_FILE = "postgres.password"
#: Server settings: loopback only, no Unix socket (its folder would need the same care as the
#: data), and durability traded for speed, as befits a throwaway demo database.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] ",
}
_PLANS = ("free", "team", "enterprise")


@dataclass(frozen=True)
class Cluster:
    """Where a cluster's data lives and how to reach it once it runs on ``port``."""

    data_dir: Path
    password: str
    port: int = 0
    moved: str = ""  # why the data is not in the state folder, when it is not

    def dsn(self, database: str, with_password: bool = False) -> str:
        """A libpq URL for ``database``; with the password only for a process's environment."""
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{ROLE}{secret}@127.0.0.1:{self.port}/{database}"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder (a ``DemoError`` says how to get one)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda path: int(path.parent.parent.name)
                   if path.parent.parent.name.isdigit() else 0)
    if not found:
        raise DemoError("PostgreSQL is not installed: run scripts/install-debs.sh postgresql "
                        "(or 'make install')")
    return found[-1].parent


def _run_as() -> pwd.struct_passwd | None:
    """The user the server runs as, None when the kit already runs unprivileged."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError as exc:
        raise DemoError(f"PostgreSQL refuses to run as root and there is no {RUN_AS!r} user to "
                        "run it as: install Debian's postgresql package (it creates the user), "
                        "or run the demo as an unprivileged user") from exc


def run_as_prefix() -> list[str]:
    """What to put before a server command so it runs unprivileged (empty when it already is)."""
    user = _run_as()
    if user is None:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise DemoError("setpriv (util-linux) is needed to run PostgreSQL as an unprivileged user")
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]


def unreachable_ancestor(folder: Path, user: pwd.struct_passwd) -> Path | None:
    """The first folder on the way to ``folder`` that ``user`` cannot enter, if any."""
    for ancestor in [*reversed(folder.parents), folder]:
        try:
            info = ancestor.stat()
        except FileNotFoundError:
            return None  # it will be created, as root, with a mode we choose
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == user.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return ancestor
    return None


def place(state: Path) -> tuple[Path, str]:
    """The data folder for the stack in ``state``, and why it moved, when it did."""
    wanted = state / "postgres"
    user = _run_as()
    blocked = unreachable_ancestor(state, user) if user else None
    if blocked is None:
        return wanted, ""
    digest = hashlib.sha256(str(state).encode()).hexdigest()[:12]
    moved = Path("/var/tmp") / f"gameday-demo-{digest}" / "postgres"
    why = (f"PostgreSQL runs as {RUN_AS!r}, which cannot enter {blocked} "
           f"(mode {stat.S_IMODE(blocked.stat().st_mode):o}); its data is in {moved.parent} "
           f"instead. To keep it in {wanted}, put the demo's state where {RUN_AS!r} can reach "
           f"it (GAMEDAY_STATE=/var/tmp/gameday) or 'chmod o+x {blocked}'")
    return moved, why


def _password(state: Path) -> tuple[str, bool]:
    """The cluster's password and whether it was made just now."""
    path = state / PASSWORD_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_text(encoding="utf-8").strip(), False
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password)
    return password, True


def _hand_over(path: Path, mode: int) -> None:
    path.chmod(mode)
    user = _run_as()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


def init(state: Path) -> Cluster:
    """The demo's cluster for the stack in ``state``: made with ``initdb`` when there is none."""
    data, moved = place(state)
    password, fresh = _password(state)
    if (data / "PG_VERSION").is_file() and not fresh:
        return Cluster(data, password, moved=moved)
    # A cluster without its password (or half made) cannot be used: start it afresh.
    shutil.rmtree(data, ignore_errors=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    if moved:
        data.parent.chmod(0o711)
    data.mkdir()
    _hand_over(data, 0o700)
    pwfile = data.parent / f".{data.name}.pw"
    pwfile.write_text(password, encoding="utf-8")
    _hand_over(pwfile, 0o600)
    try:
        result = subprocess.run(
            [*run_as_prefix(), str(bin_dir() / "initdb"), "-D", str(data), "-U", ROLE,
             f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C",
             "--no-sync", "--no-instructions"],
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        (state / PASSWORD_FILE).unlink(missing_ok=True)
        raise DemoError(f"initdb failed in {data}:\n{result.stderr.strip() or result.stdout}")
    return Cluster(data, password, moved=moved)


def server_argv(cluster: Cluster) -> list[str]:
    """The server's command line, on 127.0.0.1:``cluster.port``."""
    settings = [arg for key, value in SETTINGS.items() for arg in ("-c", f"{key}={value}")]
    return [*run_as_prefix(), str(bin_dir() / "postgres"), "-D", str(cluster.data_dir),
            "-p", str(cluster.port), *settings]


async def _prepare(cluster: Cluster, users: int) -> None:
    import asyncpg  # the demo extra

    admin = await asyncpg.connect(cluster.dsn("postgres"), password=cluster.password, timeout=5)
    try:
        existing = {row["datname"] for row in await admin.fetch("SELECT datname FROM pg_database")}
        for database in DATABASES:
            if database not in existing:
                await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    db = await asyncpg.connect(cluster.dsn("profiles"), password=cluster.password, timeout=5)
    try:
        await db.execute("CREATE TABLE IF NOT EXISTS profiles (id text PRIMARY KEY, "
                         "name text NOT NULL, email text NOT NULL, plan text NOT NULL)")
        # A kept cluster has its profiles: only a new (or damaged) one is filled, so a stack
        # that starts reads nothing it would then count in its baseline.
        if await db.fetchval("SELECT count(*) FROM profiles") < users:
            await db.executemany(
                "INSERT INTO profiles (id, name, email, plan) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (id) DO NOTHING", seed_rows(users))
            await db.execute("ANALYZE profiles")
    finally:
        await db.close()


def seed_rows(users: int = USERS) -> list[tuple[str, str, str, str]]:
    """The demo's profiles as ``(id, name, email, plan)``: what ``prepare`` stores, and what
    the cache is warmed with (without reading them back from the database)."""
    return [(str(n), f"User {n}", f"user{n}@example.test", _PLANS[n % len(_PLANS)])
            for n in range(1, users + 1)]


def prepare(cluster: Cluster, users: int = USERS) -> None:
    """Create the databases and seed ``users`` profiles, keeping what is already there."""
    asyncio.run(_prepare(cluster, users))


async def _ready(cluster: Cluster) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(cluster.dsn("postgres"), password=cluster.password,
                                     timeout=1)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
    await conn.close()
    return True


def ready(cluster: Cluster) -> bool:
    """Whether the server accepts a login now (it listens a moment before it does)."""
    return asyncio.run(_ready(cluster))
