"""PyTorch's `torch.utils` paths: `xbp.utils.data` (the data pipeline) and `xbp.utils.tensorboard`."""
