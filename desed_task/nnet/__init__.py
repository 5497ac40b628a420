"""Networks: the CRNN (2021; the 2023 embedding fusion), the SSEP + SED ensemble, BEATs, the
TDCN++ separation network.

`build_network` (``nnet/factory.py``) is the one place that turns a config into its network.
"""

from desed_task.nnet.factory import (
    build_network,
    build_separation_network,
    network_from_config,
    network_kind,
    run_network,
)

__all__ = ["build_network", "build_separation_network", "network_from_config", "network_kind",
           "run_network"]
