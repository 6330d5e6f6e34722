"""Tasks and data: TFDS builders (array_record, no TensorFlow), vocabularies, batching."""
