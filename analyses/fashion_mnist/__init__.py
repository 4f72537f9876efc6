"""Problem 4: a fast FashionMNIST trainer, a hyperparameter grid and a saved > 90 % model.

data (IDX files -> in-memory tensors, batched augmentation), model (the CNN from a config, one-file
save/load), train (train / get_prediction / evaluate / make_optimizer / fit), grid (grid files),
trials (one cached trial), executors (local, Ray Tune), evaluate_model (command line).
"""
