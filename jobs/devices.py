"""What accelerator this worker has, for logs and the job's record."""


def worker_device_description():
    try:
        import torch
    except ImportError:
        return "cpu (torch not installed)"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"cuda x{len(names)}: {', '.join(names)}"
    return "cpu"
