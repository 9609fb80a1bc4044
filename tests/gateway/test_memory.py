"""Start-up state is built without automatic collections and then kept out of them."""

from __future__ import annotations

import gc
import weakref

import pytest

from gateway.memory import bulk, settle, unsettle


@pytest.fixture
def collector():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def test_bulk_pauses_collection_and_restores_it_even_on_error(collector):
    gc.enable()
    with bulk():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), bulk():
        raise RuntimeError("a start-up that fails")
    assert gc.isenabled()


def test_bulk_leaves_a_disabled_collector_disabled(collector):
    gc.disable()
    with bulk():
        pass
    assert not gc.isenabled()


def test_settle_frees_cycles_then_keeps_what_lives_out_of_collections(collector):
    class Cycle:
        pass

    kept = Cycle()
    with bulk():
        garbage = Cycle()
        garbage.me = garbage  # a cycle: only a collection frees it
        gone = weakref.ref(garbage)
        del garbage
        assert gone() is not None  # no collection ran to free it
        settle()
    assert gone() is None
    assert gc.get_freeze_count() > 0
    alive = {id(o) for o in gc.get_objects()}
    assert id(kept) not in alive  # in the permanent generation: collections do not walk it
    unsettle()
    assert gc.get_freeze_count() == 0
    assert id(kept) in {id(o) for o in gc.get_objects()}
