"""`xbp.random`, as `torch.random`: seeding and the state of the default random streams, so a
checkpoint can resume them (``state = xbp.random.get_rng_state(); ...; set_rng_state(state)``)."""
from ._random import (  # noqa: F401
    Generator, default_generator, fork_rng, get_rng_state, initial_seed, manual_seed, seed, set_rng_state,
)

__all__ = ["Generator", "default_generator", "fork_rng", "get_rng_state", "initial_seed", "manual_seed", "seed",
           "set_rng_state"]
