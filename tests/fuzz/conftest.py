"""Each operation of the fuzzed schema is a test of its own, under its own node id."""

from __future__ import annotations

import pytest
from _pytest.nodeid import NodeId


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Schemathesis makes one item per operation but (under pytest 9) gives them all the test
    function's node id; pytest-xdist schedules by node id, so it would run only the first of them."""
    for item in items:
        label = getattr(item, "operation_label", None)
        if label and not item.nodeid.endswith("]"):
            item._id = NodeId.parse(f"{item.nodeid}[{label}]")
