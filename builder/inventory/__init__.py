"""What is inside each built image: its package manifest, the SBOM made from it, and diffs between two images."""
