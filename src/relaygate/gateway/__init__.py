"""One worker's gateway: the route table over the pipeline and the operational routes, the runtime snapshot
it serves and its reload, and the parts that outlive a reload (transport, metrics, completion queue)."""

from relaygate.gateway.core import Gateway

__all__ = ["Gateway"]
