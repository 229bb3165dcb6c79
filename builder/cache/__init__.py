"""Content-addressed reuse: which local or registry image is a node's own build, test records keyed by content."""
