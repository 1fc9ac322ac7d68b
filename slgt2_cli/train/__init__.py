"""Training: the configuration (`config`), the training loop with validation, resume and DDP (`loop`), and the
run directory it writes (`run_dir`).

In: a dataset directory and a configuration. Out: RUN_DIR with checkpoints, metrics log, plots, config.yaml.
"""
