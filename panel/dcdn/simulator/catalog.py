"""The seeded catalog the simulator serves: plans, images, regions and their nodes, templates.

Plain data only; the rules that use it live in ``state.py``. The catalog is the same for
every account. Prices are monthly, in USD (1 credit = 1 USD).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def _plan(
    plan_id: str,
    vcpus: int,
    ram_mb: int,
    disk_gb: int,
    bandwidth_tb: str,
    price_usd: str,
    cpu_type: str,
    dedicated_ip: bool,
) -> dict[str, Any]:
    return {
        "id": plan_id,
        "vcpus": vcpus,
        "ram_mb": ram_mb,
        "disk_gb": disk_gb,
        "bandwidth_tb": Decimal(bandwidth_tb),
        "price_usd": Decimal(price_usd),
        "cpu_type": cpu_type,
        "dedicated_ip": dedicated_ip,
    }


# Dedicated plans reach above 100 USD so that the demo account (100 credits) can hit 402.
PLANS: tuple[dict[str, Any], ...] = (
    _plan("nano", 1, 512, 10, "0.5", "2.0", "shared", False),
    _plan("micro", 1, 1024, 20, "1.0", "3.5", "shared", False),
    _plan("s-small", 1, 2048, 40, "2.0", "5.0", "shared", False),
    _plan("s-medium", 2, 4096, 80, "3.0", "10.0", "shared", False),
    _plan("s-large", 4, 8192, 160, "4.0", "20.0", "shared", True),
    _plan("s-xlarge", 8, 16384, 320, "5.0", "40.0", "shared", True),
    _plan("d-small", 2, 4096, 80, "3.0", "24.0", "dedicated", True),
    _plan("d-medium", 4, 8192, 160, "4.0", "48.0", "dedicated", True),
    _plan("d-large", 8, 16384, 320, "6.0", "96.0", "dedicated", True),
    _plan("d-xlarge", 16, 32768, 640, "8.0", "192.0", "dedicated", True),
    _plan("d-2xlarge", 32, 65536, 1280, "10.0", "384.0", "dedicated", True),
)

IMAGES: tuple[dict[str, str], ...] = (
    {"id": "ubuntu-24.04", "name": "Ubuntu 24.04 LTS"},
    {"id": "ubuntu-22.04", "name": "Ubuntu 22.04 LTS"},
    {"id": "ubuntu-20.04", "name": "Ubuntu 20.04 LTS"},
    {"id": "debian-12", "name": "Debian 12 (Bookworm)"},
    {"id": "debian-11", "name": "Debian 11 (Bullseye)"},
    {"id": "rocky-9", "name": "Rocky Linux 9"},
    {"id": "almalinux-9", "name": "AlmaLinux 9"},
    {"id": "centos-stream-9", "name": "CentOS Stream 9"},
    {"id": "fedora-40", "name": "Fedora 40"},
    {"id": "alpine-3.20", "name": "Alpine Linux 3.20"},
    {"id": "archlinux", "name": "Arch Linux"},
    {"id": "opensuse-leap-15.6", "name": "openSUSE Leap 15.6"},
    {"id": "freebsd-14.1", "name": "FreeBSD 14.1"},
    {"id": "docker-ubuntu-22.04", "name": "Docker CE on Ubuntu 22.04"},
    {"id": "cuda-ubuntu-22.04", "name": "NVIDIA CUDA 12 on Ubuntu 22.04"},
)

# Region id -> number of nodes, as the provider's reference lists them.
REGION_NODE_COUNTS: dict[str, int] = {
    "eu-central": 2,
    "eu-west": 1,
    "us-east": 1,
    "us-west": 1,
    "sa-east": 3,
}

TEMPLATES: tuple[dict[str, str], ...] = (
    {
        "id": "wordpress",
        "name": "WordPress site",
        "description": "A small shared server for a WordPress blog or shop.",
        "image": "ubuntu-22.04",
        "plan": "s-small",
        "cpu_type": "shared",
    },
    {
        "id": "docker-host",
        "name": "Docker host",
        "description": "Docker CE preinstalled, room for a handful of containers.",
        "image": "docker-ubuntu-22.04",
        "plan": "s-medium",
        "cpu_type": "shared",
    },
    {
        "id": "dev-box",
        "name": "Development box",
        "description": "The cheapest way to get a Linux shell in the cloud.",
        "image": "debian-12",
        "plan": "nano",
        "cpu_type": "shared",
    },
    {
        "id": "vpn-gateway",
        "name": "VPN gateway",
        "description": "A tiny Alpine server for WireGuard.",
        "image": "alpine-3.20",
        "plan": "micro",
        "cpu_type": "shared",
    },
    {
        "id": "game-server",
        "name": "Game server",
        "description": "Dedicated cores and a dedicated IP for low-latency game hosting.",
        "image": "ubuntu-22.04",
        "plan": "d-small",
        "cpu_type": "dedicated",
    },
    {
        "id": "database",
        "name": "Database server",
        "description": "Dedicated cores and memory for PostgreSQL or MySQL.",
        "image": "rocky-9",
        "plan": "d-medium",
        "cpu_type": "dedicated",
    },
)

PLANS_BY_ID: dict[str, dict[str, Any]] = {plan["id"]: plan for plan in PLANS}
IMAGE_IDS: frozenset[str] = frozenset(image["id"] for image in IMAGES)


def region_node_ids(region: str) -> list[str]:
    """The compute nodes of a region, e.g. ``node-sa-east-1`` .. ``node-sa-east-3``."""
    return [f"node-{region}-{number}" for number in range(1, REGION_NODE_COUNTS[region] + 1)]
