"""Data engine (MuJoCo robots and scenes, compositional synthesis, pseudo-4D pairs), training and evaluation."""
