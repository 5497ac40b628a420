"""Networks: the CRNN (2021; the 2023 embedding fusion), the SSEP + SED ensemble, BEATs, the
TDCN++ separation network.

A config's ``net.type`` names a network of the registry (`desed_task.nnet.registry`: its
contract, the built-in ``crnn`` registered here); `build_network` (``nnet/factory.py``) is the
one place that turns a config into its network.
"""

from desed_task.nnet.CRNN import CRNN_CONTRACT
from desed_task.nnet.factory import (
    NetworkNeeds,
    build_network,
    build_separation_network,
    network_from_config,
    network_kind,
    network_needs,
    run_network,
)
from desed_task.nnet.registry import register_network

register_network(CRNN_CONTRACT)

__all__ = ["NetworkNeeds", "build_network", "build_separation_network", "network_from_config", "network_kind",
           "network_needs", "run_network"]
