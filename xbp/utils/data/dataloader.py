"""`torch.utils.data.dataloader`'s path: DataLoader, default_collate, default_convert, get_worker_info."""
from ...data.dataloader import DataLoader, default_collate, default_convert, get_worker_info  # noqa: F401

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]
