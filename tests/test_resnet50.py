"""ResNet-50 for IIRC-ImageNet: torchvision's backbone, our heads, no pretrained weights."""
import pytest
import torch

from mile_cl.models import CosineLinear, build_model, resnet50


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_shapes_and_heads(head):
    torch.manual_seed(0)
    model = resnet50(7, head=head).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features, logits = model.features(x), model(x)
    assert features.shape == (2, 2048) and logits.shape == (2, 7)
    if head == "cosine":
        assert isinstance(model.head, CosineLinear)
        assert logits.abs().max() <= model.head.sigma.item() + 1e-5
    else:
        assert isinstance(model.head, torch.nn.Linear)


def test_from_scratch_by_default():
    """Two seeds give different weights: nothing was loaded from a checkpoint."""
    torch.manual_seed(0)
    a = resnet50(3).backbone.conv1.weight
    torch.manual_seed(1)
    b = resnet50(3).backbone.conv1.weight
    assert not torch.equal(a, b)


def test_build_model_by_name():
    assert type(build_model("resnet50", 5)).__name__ == "ResNet50"
    with pytest.raises(ValueError, match="valid names: resnet32, resnet50"):
        build_model("vit", 5)
