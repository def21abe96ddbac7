"""The recovery directory's check: the partition count comes from the partitions, so a
directory made with one partition (before clusters) resumes, and a missing one is named."""

import pytest
from bytewax.recovery import init_db_dir

from core.errors import RecoveryError
from deploy import recovery_dir


def test_a_one_partition_directory_of_before_is_whole(tmp_path):
    init_db_dir(tmp_path, 1)
    assert recovery_dir.part_count(tmp_path) == 1
    recovery_dir.check("orders_v1", tmp_path)


def test_a_missing_partition_is_named(tmp_path):
    init_db_dir(tmp_path, recovery_dir.PARTITIONS)
    assert recovery_dir.part_count(tmp_path) == recovery_dir.PARTITIONS
    (tmp_path / "part-3.sqlite3").unlink()
    with pytest.raises(RecoveryError, match=r"\['part-3.sqlite3'\] are missing"):
        recovery_dir.check("orders_v1", tmp_path)


def test_a_directory_with_no_partition_left_is_refused(tmp_path):
    with pytest.raises(RecoveryError, match=r"\['part-0.sqlite3'\] are missing"):
        recovery_dir.check("orders_v1", tmp_path)
