"""Host dashboard: memory, CPU, load and filesystems of each host, as node_exporter sees them."""

from __future__ import annotations

from obsctl.metric_names import NodeMetric
from obsctl.mixin import signals
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.dashboards.panels import RATE, Board, Line, Target
from obsctl.mixin.promql import series
from obsctl.mixin.rules import DISK_WINDOW

KEY = "host"
HOST_LEGEND = "{{instance}}"
DISK_LEGEND = "{{instance}} {{mountpoint}}"
BUSY = 'mode!="idle"'


def build(config: MixinConfig) -> Board:
    """The host dashboard."""
    node = config.selectors.node
    limits = config.thresholds
    board = Board(
        config,
        KEY,
        "obsctl / Host",
        "The platform's hosts through node_exporter: what HostMemoryHigh, HostCpuSaturated, "
        "HostDiskFillingUp and HostExporterDown watch, with their thresholds as dashed lines.",
    )
    board.link_to("overview", "Overview")
    board.link_to("database", "Database")

    board.status(
        "node_exporter scraped",
        "Each host's node_exporter as Prometheus scrapes it: OK, or DOWN (HostExporterDown: the "
        "host alerts cannot fire for it).",
        [Target(f"2 * (1 - {series('up', node)})", HOST_LEGEND)],
        height=3,
    )
    board.row("Memory and CPU")
    board.timeseries(
        "Memory available",
        "MemAvailable / MemTotal: what the kernel can give without swapping; the dashed line is "
        "the HostMemoryHigh threshold.",
        "percentunit",
        [Target(signals.memory_available_ratio(node), HOST_LEGEND)],
        line=Line(limits.host_memory_available_ratio, above=False),
        width=8,
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "CPU busy",
        "Share of CPU time spent working (not idle, iowait or steal); the dashed line is the "
        "busy threshold of HostCpuSaturated.",
        "percentunit",
        [Target(signals.cpu_busy_ratio(node, RATE), HOST_LEGEND)],
        line=Line(limits.host_cpu_busy_ratio),
        width=8,
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Load per core",
        "1-minute load average over the number of CPUs; the dashed line is the load threshold "
        "of HostCpuSaturated (it fires with both lines crossed).",
        "short",
        [Target(signals.load_per_core(node), HOST_LEGEND)],
        line=Line(limits.host_load_per_core),
        width=8,
        min_value=0,
    )
    cpu_time = series(NodeMetric.CPU_SECONDS, node, BUSY)
    board.timeseries(
        "CPU time by mode",
        "CPUs' worth of time per mode (user, system, iowait, steal, ...), idle left out.",
        "short",
        [Target(f"sum by (instance, mode) (rate({cpu_time}[{RATE}]))", "{{instance}} {{mode}}")],
        stacked=True,
        min_value=0,
    )
    board.timeseries(
        "Load average",
        "Load over 1, 5 and 15 minutes, and the number of CPUs.",
        "short",
        [
            Target(series(NodeMetric.LOAD1, node), "1m {{instance}}"),
            Target(series(NodeMetric.LOAD5, node), "5m {{instance}}"),
            Target(series(NodeMetric.LOAD15, node), "15m {{instance}}"),
            Target(signals.cores(node), "CPUs {{instance}}"),
        ],
        min_value=0,
    )

    board.row("Filesystems and network")
    board.timeseries(
        "Filesystem free",
        "Free share of each disk filesystem (tmpfs, overlay and the like left out); "
        f"HostDiskFillingUp fires under the dashed line when the last {DISK_WINDOW} predict it "
        "full within thresholds.host_disk_fill_hours.",
        "percentunit",
        [Target(signals.filesystem_free_ratio(node), DISK_LEGEND)],
        line=Line(limits.host_disk_free_ratio, above=False),
        width=8,
        min_value=0,
        max_value=1,
    )
    board.timeseries(
        "Filesystem space available",
        "Bytes unprivileged processes can still write, per filesystem.",
        "bytes",
        [
            Target(
                series(NodeMetric.FILESYSTEM_AVAILABLE, node, signals.DISK_FILESYSTEMS),
                DISK_LEGEND,
            )
        ],
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Network traffic",
        "Bytes received and sent per second, all interfaces but loopback.",
        "Bps",
        [
            Target(
                f"sum by (instance) (rate({series(NodeMetric.NETWORK_RECEIVE, node)}[{RATE}]))",
                "received {{instance}}",
            ),
            Target(
                f"sum by (instance) (rate({series(NodeMetric.NETWORK_TRANSMIT, node)}[{RATE}]))",
                "sent {{instance}}",
            ),
        ],
        width=8,
        min_value=0,
    )
    return board
