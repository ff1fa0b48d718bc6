import gc

from m2mgate.gc_tuning import freeze_startup_objects


def test_startup_objects_are_frozen_and_thresholds_left_alone():
    thresholds = gc.get_threshold()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == thresholds
    finally:
        gc.unfreeze()
