"""Tasks and data: TFDS builders (array_record, no TensorFlow), vocabularies, batching.

    task = data.get_task("copy", data_dir=DIR, delay=50)   # prepares once, then cached
    batches = task.batches("train", batch_size=32, seed=0, start_step=step)
    stream = data.get_task("char_corpus", data_dir=DIR).stream("train", 32, 128)

Known tasks: `sorted(data.TASKS)`; an unknown name raises listing them.
"""

from seqlab.data.batching import collate, epoch_batches
from seqlab.data.builder import DEFAULT_DATA_DIR, prepare
from seqlab.data.files import DataError
from seqlab.data.registry import TASKS, get_builder_class, get_task
from seqlab.data.stream import stream_batches
from seqlab.data.task import Task
from seqlab.data.vocab import Vocab

__all__ = [
    "DEFAULT_DATA_DIR",
    "TASKS",
    "DataError",
    "Task",
    "Vocab",
    "collate",
    "epoch_batches",
    "get_builder_class",
    "get_task",
    "prepare",
    "stream_batches",
]
