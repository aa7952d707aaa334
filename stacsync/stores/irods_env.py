"""Where an iRODS session connects: the environment file, IRODS_* variables, else CyVerse.

No python-irodsclient here: `irods.IrodsClient.connect` opens the session from these answers.
"""

from __future__ import annotations

import json
import os

from stacsync.core.errors import StacsyncError

ANONYMOUS = "anonymous"
# Where anonymous access goes when neither the environment nor an env file says otherwise.
CYVERSE = {"irods_host": "data.cyverse.org", "irods_port": 1247, "irods_zone_name": "iplant"}


class IrodsConnectError(StacsyncError):
    """No iRODS session can be set up from this machine's iRODS environment; says what to fix."""


def environment_file(env_file: str | None = None) -> str:
    """`env_file`, else $IRODS_ENVIRONMENT_FILE, else ~/.irods/irods_environment.json."""
    return (
        env_file
        or os.environ.get("IRODS_ENVIRONMENT_FILE")
        or os.path.expanduser("~/.irods/irods_environment.json")
    )


def anonymous_target(env_file: str) -> tuple[str, int, str]:
    """Host, port and zone for an anonymous session: environment, env file, then CyVerse."""
    settings = dict(CYVERSE)
    if os.path.isfile(env_file):
        with open(env_file, encoding="utf-8") as fh:
            data = json.load(fh)
        settings.update({k: data[k] for k in CYVERSE if k in data})
    for key, var in (
        ("irods_host", "IRODS_HOST"),
        ("irods_port", "IRODS_PORT"),
        ("irods_zone_name", "IRODS_ZONE_NAME"),
    ):
        if os.environ.get(var):
            settings[key] = os.environ[var]
    return (
        str(settings["irods_host"]),
        int(settings["irods_port"]),
        str(settings["irods_zone_name"]),
    )
