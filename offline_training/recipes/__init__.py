"""Training recipes: the shipped tiny model (train_tiny.sh) and the one-GPU-run recipe (gpu_train.py)."""
