"""Training internals behind `embody4d train`: stage batches, checkpoints, EMA, loss logs, a toy dataset for tests."""
