"""One epoch of MNIST-sized mini-batches (60,000 images, batch 100): the in-memory tensor loader of
``repronets.core.data`` against a per-sample DataLoader like the τ paper's (torchvision's MNIST decodes each image
with PIL and ``ToTensor`` in ``__getitem__``, num_workers=0).

Uses the real MNIST from the data root when it is there, otherwise random images of the same shape
(the timing does not depend on the pixel values).
"""

import torch
from PIL import Image
from repronets.core import data
from runner import Suite
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import ToTensor


class PerSampleMNIST(Dataset):
    """What ``torchvision.datasets.MNIST(transform=ToTensor())`` does for each sample."""

    def __init__(self, images_uint8, labels):
        self.images, self.labels, self.to_tensor = images_uint8, labels, ToTensor()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.to_tensor(Image.fromarray(self.images[i].numpy(), mode="L")), int(self.labels[i])


def suite() -> Suite:
    try:
        split = data.load("mnist", "train")
        source = "real MNIST"
    except data.DatasetNotFound:
        split = data.Split(
            "mnist", "train", torch.rand(60_000, 1, 28, 28), torch.randint(0, 10, (60_000,)), tuple(map(str, range(10)))
        )
        source = "random images of MNIST's shape"
    images = (split.x[:, 0] * 255).round().to(torch.uint8)
    per_sample = DataLoader(PerSampleMNIST(images, split.y), batch_size=100, shuffle=True, num_workers=0)

    def epoch(loader):
        def run():
            for _x, _y in loader:
                pass

        return run

    def sliced():
        order = torch.randperm(len(split))
        for i in range(0, len(split), 100):
            index = order[i : i + 100]
            split.x[index], split.y[index]

    s = Suite("data_loading", f"one epoch of 600 batches of 100 ({source})", unit="epoch", min_run_time=3.0)
    s.add("per-sample PIL + ToTensor DataLoader (original)", epoch(per_sample), baseline=True)
    s.add("repronets Split.loader (tensor batches)", lambda: epoch(split.loader(100, shuffle=True))())
    s.add("randperm + tensor indexing (lower bound)", sliced)
    return s
