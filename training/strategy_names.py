"""The tf.distribute strategies a run may train under, by name: importable without
TensorFlow (``run_all.py --help`` lists them); ``training.strategy`` chooses one."""

STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")
