"""PyTorch architectures: the WCDGAN generator and discriminator, and the peers the paper compares with."""

from models.checkpoint import CheckpointError, load_generator, save_generator
from models.wcdgan import Discriminator, GeneratorConfig, WCDGANGenerator, count_parameters

__all__ = [
    "CheckpointError",
    "Discriminator",
    "GeneratorConfig",
    "WCDGANGenerator",
    "count_parameters",
    "load_generator",
    "save_generator",
]
