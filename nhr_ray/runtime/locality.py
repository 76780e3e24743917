"""Bytes an attempt chain moves between nodes, estimated from where its actors run (pure code).

The driver puts source images in its own node's object store; each node that runs a stage of the
chain pulls the batch's sources once (Ray keeps a copy on that node), and each hop whose producer and
consumer run on different nodes moves the attempts' edited images; the last hop goes back to the
driver. Unknown nodes (an actor not yet placed) count as remote."""

from __future__ import annotations


def chain_cross_node_bytes(driver_node: str | None, nodes: list[str | None], src_bytes: int, edit_bytes: int,
                           tail: str | None | bool = False) -> int:
    """nodes: the node of each stage of the chain in order (editor, prefilter, cpu, validator).
    tail: the node of a last step that takes the attempts without the sources and sends the driver
    only rows (their bytes are counted apart, when they arrive); False: no such step."""
    moved, have_src = 0, {driver_node}
    prev = None
    for k, n in enumerate(nodes):
        if n is None or n not in have_src:
            moved += src_bytes
            if n is not None:
                have_src.add(n)
        if k > 0 and (n is None or n != prev):
            moved += edit_bytes
        prev = n
    if tail is not False:
        if nodes and (tail is None or tail != prev):
            moved += edit_bytes
        return moved
    if nodes and (prev is None or prev != driver_node):
        moved += edit_bytes
    return moved
