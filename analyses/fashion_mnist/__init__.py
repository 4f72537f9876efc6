"""Problem 4: a fast FashionMNIST trainer, a hyperparameter grid and a saved > 90 % model.

data (IDX files -> in-memory tensors, batched augmentation), model (the CNN from a config, the model
file's bytes, load), train (train / get_prediction / evaluate / make_optimizer / fit), grid (grid
files, fair variants), trials (one trial as a pure computation), selection (Problem 4d's search and
its paired tests), evaluate_model (command line). Caching trials and running them on a process pool
or Ray is infrastructure: miniplaces/report/trial_runner.py.
"""
