"""Monte Carlo engine (SPEC §3.3): the construction model sampled company by company."""

from updog.simulation.engine import BLOCK_SIZE, SimulationResult, block_seed, simulate

__all__ = ["BLOCK_SIZE", "SimulationResult", "block_seed", "simulate"]
