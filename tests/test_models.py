"""ResNet-32 for CIFAR: shapes, parameter count, heads."""
import pytest
import torch
from torch import nn

from mile_cl.models import BasicBlock, CosineLinear, resnet32


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_output_and_feature_shapes():
    torch.manual_seed(0)
    model = resnet32(num_classes=115).eval()
    x = torch.randn(4, 3, 32, 32)
    assert model(x).shape == (4, 115)
    assert model.features(x).shape == (4, 64)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 64
    assert torch.equal(model(x), model.head(model.features(x)))


def test_architecture_is_3_stages_of_5_basic_blocks():
    model = resnet32()
    stages = [model.layer1, model.layer2, model.layer3]
    assert [len(s) for s in stages] == [5, 5, 5]
    assert all(isinstance(b, BasicBlock) for s in stages for b in s)
    assert [s[0].conv1.out_channels for s in stages] == [16, 32, 64]
    # 1 stem conv + 15 blocks x 2 convs + 1 head = 32 weighted layers
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 32
    # 1x1-conv + BN shortcuts only where the shape changes (first blocks of stages 2 and 3)
    assert [isinstance(b.shortcut, nn.Sequential) for s in stages for b in s].count(True) == 2


def test_parameter_count():
    # He et al.'s ResNet-32 (CIFAR-10 head, parameter-free "option A" shortcuts) has 464,154
    # parameters, the "0.46M" of the literature. Ours, like the IIRC reference, has 1x1-conv
    # + BN shortcuts (16*32 + 2*32 + 32*64 + 2*64 = 2,752 more) and a 115-way head
    # (64*115 + 115 = 7,475 instead of 650): 464,154 + 2,752 + 6,825 = 473,731.
    assert count(resnet32(num_classes=10)) == 464_154 + 2_752
    assert count(resnet32(num_classes=115)) == 473_731
    assert count(resnet32(num_classes=115)) == pytest.approx(0.46e6, rel=0.04)


def test_cosine_head_is_bounded_by_sigma():
    torch.manual_seed(0)
    model = resnet32(num_classes=115, head="cosine")
    assert isinstance(model.head, CosineLinear)
    assert model.head.sigma.requires_grad and model.head.sigma.item() == 1.0
    with torch.no_grad():
        model.head.sigma.fill_(4.0)
    out = model(torch.randn(8, 3, 32, 32))
    assert out.shape == (8, 115)
    assert out.abs().max() <= 4.0 + 1e-5
    # cosine of a class weight with itself is 1: the bound is reached
    head = model.head
    assert torch.allclose(head(head.weight[:3].detach()).diagonal(), torch.full((3,), 4.0))


def test_cosine_head_trains_sigma():
    torch.manual_seed(0)
    model = resnet32(num_classes=5, head="cosine")
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.head.sigma.grad is not None and model.head.weight.grad is not None


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="head must be 'linear' or 'cosine'"):
        resnet32(head="softmax")
