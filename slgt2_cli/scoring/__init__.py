"""Scores maps against labels: the confusion matrix and metrics (`metrics`), scoring a map or a dataset split
(`evaluator`), predicting and scoring scenes with a model (`scenes`), and reports (`report`).

In: class maps or a checkpoint, label rasters, a class table. Out: metrics, JSON/CSV reports, plots.
"""
