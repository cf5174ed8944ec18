"""Stage dependency graph: ordering by ``needs:`` with clear errors for unknown stages and cycles."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import RecipeError


def topological_order(needs: Mapping[str, Sequence[str]], source: str = "recipe") -> list[str]:
    """Order stages so each comes after everything it needs; ties keep the recipe's order."""
    for stage, deps in needs.items():
        for dep in deps:
            if dep not in needs:
                known = ", ".join(needs)
                raise RecipeError(f"{source}: key 'stages.{stage}.needs': unknown stage {dep!r} (stages: {known})")
            if dep == stage:
                raise RecipeError(f"{source}: key 'stages.{stage}.needs': a stage cannot need itself")
    order: list[str] = []
    placed: set[str] = set()
    remaining = list(needs)
    while remaining:
        ready = [s for s in remaining if all(d in placed for d in needs[s])]
        if not ready:
            raise RecipeError(f"{source}: 'needs' form a cycle: {' -> '.join(_find_cycle(needs, remaining))}")
        for stage in ready:
            order.append(stage)
            placed.add(stage)
        remaining = [s for s in remaining if s not in placed]
    return order


def _find_cycle(needs: Mapping[str, Sequence[str]], candidates: list[str]) -> list[str]:
    path: list[str] = []
    node = candidates[0]
    while node not in path:
        path.append(node)
        node = next(d for d in needs[node] if d in candidates)
    return path[path.index(node):] + [node]
