import pytest
import torch

from src.data.batches import TensorBatches, augment


def numbered(count):
    return torch.arange(count).view(-1, 1, 1, 1).expand(count, 2, 2, 3).to(torch.uint8), torch.arange(count)


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_share_an_epoch_without_overlap(shuffle):
    images, labels = numbered(103)
    shards = [TensorBatches(images, labels, 10, shuffle, seed=5, rank=r, world_size=2) for r in range(2)]
    seen = [torch.cat([lab for _, lab in shard]) for shard in shards]
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    if shuffle:  # training: equal shares so the ranks step together
        assert len(seen[0]) == len(seen[1]) == 51
    else:  # evaluation: every image once
        assert len(seen[0]) + len(seen[1]) == 103
    assert [len(s) for s in shards] == [len(list(iter(s))) for s in shards]


def test_images_stay_with_their_labels():
    images, labels = numbered(50)
    for batch_images, batch_labels in TensorBatches(images, labels, 8, shuffle=True, seed=1):
        assert torch.equal(batch_images[:, 0, 0, 0].long(), batch_labels)


@pytest.mark.parametrize("kind", ["shift_flip", "crop_flip"])
def test_augmentation_shifts_and_flips_within_bounds(kind):
    torch.manual_seed(0)
    image = torch.zeros(1, 3, 32, 32)
    image[..., 14:18, 14:18] = 1.0  # a centred 4x4 square
    out = augment(image.expand(256, 3, 32, 32).contiguous(), kind)
    assert out.shape == (256, 3, 32, 32)
    rows = out[:, 0].amax(dim=2).nonzero()[:, 1].view(256, -1)[:, 0]
    shifts = rows - 14
    margin = 4 if kind == "crop_flip" else 3
    assert shifts.abs().max() == margin and len(shifts.unique()) == 2 * margin + 1
    assert torch.allclose(out.sum(dim=(1, 2, 3)), torch.full((256,), 48.0))  # square never leaves the frame


def test_flip_mirrors_left_and_right():
    torch.manual_seed(0)
    image = torch.zeros(1, 1, 32, 32)
    image[..., :, :4] = 1.0  # a bar on the left edge
    out = augment(image.expand(200, 1, 32, 32).contiguous(), "crop_flip")
    on_right = out[..., :, 16:].sum(dim=(1, 2, 3)) > 0
    assert 0.3 < on_right.float().mean() < 0.7


def test_no_augmentation_is_identity():
    images = torch.rand(4, 3, 32, 32)
    assert augment(images, "none") is images
