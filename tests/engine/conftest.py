"""Shared settings for the engine's tests."""

import pytest


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread; several threads on a busy machine run many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
