"""Layout of the small link graph on a memory's page: the memory in the middle, its neighbours on an
ellipse around it. Computed here so the page is plain server-rendered SVG, with no script."""

import math
import uuid
from dataclasses import dataclass

from app.services.browsing import Neighbour

WIDTH, HEIGHT = 720, 380
RADIUS = 26  # of a node's circle
MAX_NODES = 16  # more would not fit legibly; the table under the graph lists every link
_CX, _CY, _RX, _RY = WIDTH / 2, HEIGHT / 2 - 8, WIDTH / 2 - 110, HEIGHT / 2 - 60


@dataclass(frozen=True)
class Node:
    id: uuid.UUID
    label: str
    type: str
    status: str
    x: float
    y: float


@dataclass(frozen=True)
class Edge:
    """A link drawn from (x1, y1) to (x2, y2), trimmed to the circles' rims so its arrowhead shows."""

    kind: str
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def label_x(self) -> float:
        return (self.x1 + self.x2) / 2

    @property
    def label_y(self) -> float:
        return (self.y1 + self.y2) / 2


@dataclass(frozen=True)
class Graph:
    centre: Node
    nodes: list[Node]
    edges: list[Edge]
    width: int = WIDTH
    height: int = HEIGHT


def label(content: str, length: int = 26) -> str:
    text = " ".join(content.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _trimmed(kind: str, start: tuple[float, float], end: tuple[float, float]) -> Edge:
    dx, dy = end[0] - start[0], end[1] - start[1]
    distance = math.hypot(dx, dy) or 1.0
    ux, uy = dx / distance, dy / distance
    return Edge(kind, start[0] + ux * RADIUS, start[1] + uy * RADIUS, end[0] - ux * RADIUS, end[1] - uy * RADIUS)


def layout(memory_id: uuid.UUID, content: str, type_: str, status: str, links: list[Neighbour]) -> Graph:
    """A neighbour linked twice (say derived_from and related) is one node, its links one labelled edge
    per direction."""
    centre = Node(memory_id, label(content), type_, status, _CX, _CY)
    memories = list({link.memory.id: link.memory for link in links if link.memory.id != memory_id}.values())
    memories = memories[:MAX_NODES]
    nodes = {
        m.id: Node(
            m.id,
            label(m.content),
            m.type,
            m.status,
            _CX + _RX * math.cos(-math.pi / 2 + 2 * math.pi * i / len(memories)),
            _CY + _RY * math.sin(-math.pi / 2 + 2 * math.pi * i / len(memories)),
        )
        for i, m in enumerate(memories)
    }
    kinds: dict[tuple[uuid.UUID, bool], list[str]] = {}
    for link in links:
        if link.memory.id in nodes:
            kinds.setdefault((link.memory.id, link.outgoing), []).append(link.kind)
    edges = []
    for (neighbour, outgoing), names in kinds.items():
        here, there = (centre.x, centre.y), (nodes[neighbour].x, nodes[neighbour].y)
        kind = " + ".join(sorted(names))
        edges.append(_trimmed(kind, here, there) if outgoing else _trimmed(kind, there, here))
    return Graph(centre, list(nodes.values()), edges)
