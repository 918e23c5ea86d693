"""The examples in deploy/ are valid: each checked by its own tool where it is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailstats.settings import load

DEPLOY = Path(__file__).parent.parent / "deploy"


def _tool(name: str, *fallbacks: str) -> str:
    for candidate in (shutil.which(name), *fallbacks):
        if candidate and os.path.exists(candidate):
            return candidate
    if os.environ.get("CI"):
        raise RuntimeError(f"{name} is not installed")
    pytest.skip(f"{name} is not installed")


def _check(args: list[str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.mark.parametrize("node", [1, 2, 3])
def test_the_nats_cluster_configuration_is_valid(node: int) -> None:
    tool = _tool("nats-server", "/usr/sbin/nats-server")
    path = DEPLOY / "nats" / f"nats-{node}.conf"
    out = _check([tool, "-t", "-c", str(path)])
    assert "valid" in out.stdout + out.stderr
    text = path.read_text()
    assert f"server_name: nats-{node}" in text
    # every node names the same three routes
    assert all(f"nats-route://nats-{n}.internal:6222" in text for n in (1, 2, 3))


def test_the_haproxy_configuration_is_valid() -> None:
    tool = _tool("haproxy", "/usr/sbin/haproxy")
    _check([tool, "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")])


def test_the_nginx_configuration_is_valid(tmp_path: Path) -> None:
    tool = _tool("nginx", "/usr/sbin/nginx")
    _check([tool, "-t", "-q", "-p", str(tmp_path), "-e", "stderr",
            "-c", str(DEPLOY / "nginx" / "nginx.conf")])  # fmt: skip


@pytest.mark.parametrize("role", ["tracking", "api", "read"])
def test_the_systemd_units_are_valid(role: str, tmp_path: Path) -> None:
    tool = _tool("systemd-analyze")
    unit = (DEPLOY / "systemd" / f"mailstats-{role}.service").read_text()
    assert "ExecStart=/opt/mailstats/bin/mailstats serve" in unit
    # verified as installed: the program and the settings file where this machine has them
    unit = unit.replace(
        "/opt/mailstats/bin/mailstats", str(Path(sys.executable).parent / "mailstats")
    )
    unit = unit.replace("/etc/mailstats/", f"{tmp_path}/")
    (tmp_path / f"mailstats-{role}.service").write_text(unit)
    shutil.copy(DEPLOY / "systemd" / f"{role}.env", tmp_path / f"{role}.env")
    _check([tool, "verify", str(tmp_path / f"mailstats-{role}.service")])


@pytest.mark.parametrize("role", ["tracking", "api", "read"])
def test_the_settings_of_each_role_are_accepted(role: str) -> None:
    lines = (DEPLOY / "systemd" / f"{role}.env").read_text().splitlines()
    environ = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    settings = load(environ=environ)
    assert settings.capture.count("nats://") == 3
    assert "target_session_attrs=read-write" in settings.db
    assert bool(settings.read_db) == (role == "read")


def test_the_patroni_and_etcd_examples_agree() -> None:
    yaml = pytest.importorskip("yaml")
    patroni = yaml.safe_load((DEPLOY / "patroni" / "patroni-1.yml").read_text())
    etcd = yaml.safe_load((DEPLOY / "patroni" / "etcd-1.yml").read_text())
    members = [
        m.split("=")[1].replace(":2380", ":2379") for m in etcd["initial-cluster"].split(",")
    ]
    assert [f"http://{h}" for h in patroni["etcd3"]["hosts"]] == members
    assert patroni["bootstrap"]["dcs"]["postgresql"]["parameters"]["hot_standby"] == "on"
    tool = shutil.which("patroni")
    if tool:
        _check([tool, "--validate-config", str(DEPLOY / "patroni" / "patroni-1.yml")])
