"""What the student's process may add (autograder.memory.child_budget_mb), read from a container's cgroup files.

Oracle: the arithmetic on the files' own numbers. The page cache (torch's libraries, read by the container)
counts in the cgroup's usage but is reclaimable: the budget is the limit less the usage beyond the page
cache, less the grader's reserve — not the limit less the whole usage, which left 64 MB when the cache was
cold and a correct Part A solution lost points.
"""

from __future__ import annotations

import pytest

from autograder import memory

MB = 2**20


def fake_cgroup(tmp_path, v2: bool, limit: int, usage: int, cache: int):
    if v2:
        (tmp_path / "memory.max").write_text(f"{limit * MB}\n")
        (tmp_path / "memory.current").write_text(f"{usage * MB}\n")
        (tmp_path / "memory.stat").write_text(f"anon {(usage - cache) * MB}\nfile {cache * MB}\nfile_mapped 9\n")
    else:
        (tmp_path / "memory.limit_in_bytes").write_text(f"{limit * MB}\n")
        (tmp_path / "memory.usage_in_bytes").write_text(f"{usage * MB}\n")
        (tmp_path / "memory.stat").write_text(f"cache 1\nrss 2\ntotal_cache {cache * MB}\n"
                                              f"total_rss {(usage - cache) * MB}\n")
    return [tmp_path]


@pytest.mark.parametrize("v2", [True, False], ids=["cgroup-v2", "cgroup-v1"])
def test_the_page_cache_is_not_taken_from_the_students_budget(tmp_path, monkeypatch, v2):
    # the cold-cache container measured: 768 MB used, 312 MB of it page cache
    monkeypatch.setattr(memory, "_cgroup_dirs", lambda: fake_cgroup(tmp_path, v2, limit=768, usage=768, cache=312))
    assert memory.page_cache_mb() == 312
    assert memory.child_budget_mb(512) == 768 - (768 - 312) - memory.RESERVE_MB  # 216
    assert memory.child_budget_mb(100) == 100  # never more than asked


def test_without_a_readable_stat_the_whole_usage_counts(tmp_path, monkeypatch):
    dirs = fake_cgroup(tmp_path, True, limit=768, usage=500, cache=300)
    (tmp_path / "memory.stat").unlink()
    monkeypatch.setattr(memory, "_cgroup_dirs", lambda: dirs)
    assert memory.page_cache_mb() == 0
    assert memory.child_budget_mb(512) == 768 - 500 - memory.RESERVE_MB
    (tmp_path / "memory.current").write_text(f"{760 * MB}\n")  # nearly full: the floor of 64 MB
    assert memory.child_budget_mb(512) == 64
