"""Finding an environment by name or path, in the README's precedence.

Command-line options > Prefect blocks > the environment file > defaults:

1. a **file path** given explicitly (``--env FILE``, or a path as the flow's ``environment``)
   is that file, whatever else exists;
2. a **name** is first looked up as a ``GameDayEnvironment`` block, when a Prefect API is
   configured (``PREFECT_API_URL`` or the active Prefect profile); ``chaosctl env import``
   makes those blocks;
3. then the state folder's ``<name>/environment.yaml`` (written by tools such as ``chaosctl
   demo up``, with the ports they picked), then the catalog's ``environments/<name>.yaml``;
4. fields a block or file leaves out take the model's defaults.

Command-line options such as ``--max-severity`` then narrow the run, never the environment.
Prefect is imported only for the block lookup, and nothing connects at import time.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import cast

from pydantic import ValidationError

from gameday.errors import CatalogError, ConfigError, Problem
from gameday.load import catalog_root, load_one
from gameday.models import Environment
from gameday.paths import state_dir

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def is_file_reference(name_or_path: str) -> bool:
    """Whether ``name_or_path`` names a file rather than an environment."""
    given = Path(name_or_path)
    return given.suffix in {".yaml", ".yml"} or "/" in name_or_path or given.is_file()


def environment_file(name_or_path: str, catalog: Path | None = None) -> Path:
    """The file that defines environment ``name_or_path``."""
    given = Path(name_or_path)
    if is_file_reference(name_or_path):
        return given
    for candidate in (state_dir() / name_or_path / "environment.yaml",
                      catalog_root(catalog) / "environments" / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in (catalog_root(catalog) / "environments").glob("*.yaml"))
    raise CatalogError([Problem(name_or_path, None, None, "environment",
                                f"no environment named {name_or_path!r} "
                                f"(known: {', '.join(known) or 'none'})")])


def load_environment(name_or_path: str, catalog: Path | None = None) -> Environment:
    """The environment ``name_or_path`` (see the module docstring for the precedence)."""
    if not is_file_reference(name_or_path):
        from_block = environment_block(name_or_path)
        if from_block is not None:
            return from_block
    return load_one(Environment, environment_file(name_or_path, catalog))


def prefect_api_url() -> str | None:
    """The configured Prefect API, or None (then no block is looked up)."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    from prefect.settings import get_current_settings  # the active profile may name one

    configured = get_current_settings().api.url
    return str(configured) if configured else None


def environment_block(name: str) -> Environment | None:
    """The ``GameDayEnvironment`` block called ``name``, or None when there is none.

    Without a configured Prefect API nothing is asked (Prefect would otherwise start a
    temporary server). A server that does not answer is logged and treated as "no block":
    commands such as ``chaosctl status`` and ``stop`` must still work from the file.
    """
    if not _NAME.match(name) or prefect_api_url() is None:
        return None
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    from blocks.environment import GameDayEnvironment

    try:
        # Called from sync and async code alike: force the synchronous client.
        block = cast(GameDayEnvironment, GameDayEnvironment.load(
            name, _sync=True))  # type: ignore[call-arg]
        return block.environment()
    except ValidationError as exc:  # a block edited into something the model refuses
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"Game Day Environment block {name!r}: {where}: {first['msg']}"
                          ) from exc
    except ValueError:  # no such block document (or its type is not registered)
        return None
    except (httpx.HTTPError, PrefectHTTPStatusError, OSError) as exc:
        logger.warning("Prefect blocks not readable (%s); using the environment file for %r",
                       type(exc).__name__, name)
        return None
