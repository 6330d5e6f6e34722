"""Task builders, one module per task (TFDS GeneratorBasedBuilder subclasses)."""
