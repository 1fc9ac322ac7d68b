"""`slgt2 demo`: synth, train, predict and evaluate in one go (`run`), and the quick-look picture of a map
beside a false-colour composite (`quicklook`).

In: a working directory. Out: a trained run, a map, its metrics and pictures.
"""
