"""The peer architectures of the WCDGAN paper's comparisons, faithful to their own papers and releases.

AR-CNN and DnCNN-3 load the authors' official MATLAB weights (:mod:`models.peers.matlab`); MemNet and MWCNN
are architecture-only here (for model-size and speed comparisons). All take and return N×C×H×W float in [0, 1].
"""

from models.peers.arcnn import ARCNN, ARCNNConfig
from models.peers.dncnn import DnCNN, DnCNNConfig
from models.peers.matlab import PeerWeightsError, load_arcnn, load_dncnn3
from models.peers.memnet import MemNet, MemNetConfig
from models.peers.mwcnn import MWCNN, MWCNNConfig, haar_dwt, haar_iwt, pad_to_multiple

__all__ = [
    "ARCNN",
    "MWCNN",
    "ARCNNConfig",
    "DnCNN",
    "DnCNNConfig",
    "MWCNNConfig",
    "MemNet",
    "MemNetConfig",
    "PeerWeightsError",
    "haar_dwt",
    "haar_iwt",
    "load_arcnn",
    "load_dncnn3",
    "pad_to_multiple",
]
