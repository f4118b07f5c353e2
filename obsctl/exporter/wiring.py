"""Wire the config to probe instances: one per configured dependency and target."""

from __future__ import annotations

from collections.abc import Callable

from obsctl.exporter.config import ExporterConfig
from obsctl.exporter.leader import Leadership, RedisLease
from obsctl.exporter.probes._mysql_pool import MySQLPool
from obsctl.exporter.probes.base import Probe, run_budget
from obsctl.exporter.probes.bullmq import BullMQProbe
from obsctl.exporter.probes.business import BusinessProbe
from obsctl.exporter.probes.cos import COSProbe
from obsctl.exporter.probes.mysql import MySQLProbe
from obsctl.exporter.probes.provider import ProviderProbe
from obsctl.exporter.probes.redis import RedisProbe


def build_probes(config: ExporterConfig, leadership: Leadership | None = None) -> list[Probe]:
    """Every probe the config asks for; MySQL probes share one pool.

    With an election, the MySQL probe reads the server-wide figures only while leading and the
    business reader keeps its checkpoint beside the lease, so a new leader continues its counts.
    """
    leading: Callable[[], bool] = leadership.leading if leadership else lambda: True
    lease = leadership if isinstance(leadership, RedisLease) else None
    probes: list[Probe] = []
    if config.mysql is not None:
        # The pool's connects keep to the MySQL probe's budget, as every client timeout does.
        pool = MySQLPool(
            config.mysql.dsn,
            maxsize=config.mysql.pool_max,
            connect_timeout=run_budget(config.mysql.timeout),
        )
        probes.append(MySQLProbe(config.mysql, pool, server_wide=leading))
        if config.business is not None:
            checkpoint = (
                lease.checkpoint(f"{config.leader.key}:business:{config.business.target}")
                if lease
                else None
            )
            probes.append(BusinessProbe(config.business, pool, checkpoint))
    if config.redis is not None:
        probes.append(RedisProbe(config.redis))
    if config.bullmq is not None:
        probes.append(BullMQProbe(config.bullmq))
    if config.cos is not None:
        probes.append(COSProbe(config.cos))
    probes.extend(ProviderProbe(p) for p in config.providers)
    return probes
