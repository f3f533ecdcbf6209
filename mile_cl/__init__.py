"""mile-cl: MILe (multi-label iterated learning) for class-incremental learning with label
hierarchies, on Avalanche. See README.md."""
from mile_cl.plugin import MILePlugin, init_output_bias, pseudo_labels

__all__ = ["MILePlugin", "init_output_bias", "pseudo_labels"]
