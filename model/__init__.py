"""Embody4D, the method: geometry and warp, depth sources, routing, transformer, VAE, pipeline, engines."""
