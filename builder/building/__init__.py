"""Building plan nodes on the engine: scheduling, the build of one node, progress lines."""
