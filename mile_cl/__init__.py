"""mile-cl: MILe (multi-label iterated learning) for class-incremental learning with label
hierarchies, on Avalanche. See README.md."""
