"""stacks: declarative, layered Jupyter image stacks built from one stacks.yaml."""
from builder.app.entry import main

main()
