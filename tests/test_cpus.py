"""The CPUs both executors plan from: CPU affinity and the cgroup's CPU quota, whichever is smaller."""

import os

import pytest
from helpers.cores import needs_two_cores, run_on_one_core

from regsweep._cpus import cgroup_cpu_quota, usable_cpus


@pytest.mark.parametrize("files, quota", [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu.max": "400000 200000\n"}, 2.0),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
    ({"cpu/cpu.cfs_quota_us": "oops\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({}, None),
], ids=["v2-none", "v2-1.5", "v2-period", "v1-none", "v1-3", "v1-unreadable", "no-cgroup"])
def test_the_cgroup_cpu_quota_is_read_from_v2_then_v1(tmp_path, files, quota):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(str(tmp_path)) == quota


def test_a_quota_below_the_cores_caps_the_cpus_and_a_fraction_rounds_down_to_at_least_one(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert usable_cpus(str(tmp_path)) == 1
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert usable_cpus(str(tmp_path)) == 1
    (tmp_path / "cpu.max").write_text(f"{1000 * 100000} 100000\n")  # more than the cores: the cores count
    assert usable_cpus(str(tmp_path)) == len(os.sched_getaffinity(0))


@needs_two_cores
def test_a_process_pinned_to_one_core_may_use_one_cpu(tmp_path):
    assert run_on_one_core(f"from regsweep._cpus import usable_cpus; print(usable_cpus({str(tmp_path)!r}))") == "1"
