"""stacks: declarative, layered Jupyter image stacks built from one stacks.yaml."""
from builder.app.cli import main

main()
