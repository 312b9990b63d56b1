"""The model: BLOOM's forward pass, its weights and how they load, attention kernels, caches, dtype and memory."""
