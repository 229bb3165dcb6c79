"""stacks: declarative, layered Jupyter image stacks built from one stacks.yaml."""
