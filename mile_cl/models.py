"""ResNet-32 for CIFAR, as the IIRC reference baselines train it (chandar-lab/IIRC, its
``lifelong_methods/models/resnetcifar.py``).

Three stages of five basic blocks (widths 16/32/64, strides 1/2/2), 1x1-conv + BN shortcuts
where the shape changes ("option B"), global average pooling to 64-d features, one head over
all labels of the benchmark (115 for IIRC-CIFAR). Like the IIRC reference (`ResNetCIFAR(...,
relu_last_hidden=False)`), the last block has no output ReLU, so features can be negative:
this matters for the cosine head, which would otherwise only see the positive orthant.

`model.features(x)` -> [B, 64] and `model.head` are public so that iCaRL and LUCIR (herding
on features; LUCIR's feature distillation and cosine head) can reach them. Every baseline
predicts with the network's sigmoids (logit > 0), iCaRL included, as the IIRC reference does.

``frozen_copy(model)`` is the one way a method keeps a model as it was (MILe's teacher,
iCaRL's and LUCIR's previous model).
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1, relu_output: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu_output = relu_output
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return F.relu(out) if self.relu_output else out


class CosineLinear(nn.Module):
    """LUCIR's head: sigma * cos(features, class weight). Outputs lie in [-sigma, sigma].

    `sigma` is a learnable scalar (initialised to 1, as in LUCIR and the IIRC reference).
    There is no bias, so `init_output_bias` (MILe's -log C) does not apply to this head.
    """

    def __init__(self, in_features: int, out_features: int, sigma: float = 1.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.sigma = nn.Parameter(torch.tensor(float(sigma)))
        bound = 1.0 / in_features**0.5
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigma * F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


class ResNetCIFAR(nn.Module):
    feature_dim = 64

    def __init__(self, num_classes: int, blocks_per_stage: int = 5, head: str = "linear"):
        super().__init__()
        if head not in ("linear", "cosine"):
            raise ValueError(f"head must be 'linear' or 'cosine', got {head!r}")
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for i, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            last_stage = i == 2
            blocks = []
            for b in range(blocks_per_stage):
                last_block = last_stage and b == blocks_per_stage - 1
                blocks.append(
                    BasicBlock(in_planes, planes, stride if b == 0 else 1, not last_block)
                )
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        if head == "linear":
            self.head = nn.Linear(self.feature_dim, num_classes)
        else:
            self.head = CosineLinear(self.feature_dim, num_classes)
        # The IIRC reference's init: Kaiming for convs; gain-1 Kaiming for the linear head.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="sigmoid")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def resnet32(num_classes: int = 115, head: str = "linear") -> ResNetCIFAR:
    """ResNet-32 for 32x32 images; `head` is "linear" (default) or "cosine" (LUCIR)."""
    return ResNetCIFAR(num_classes, blocks_per_stage=5, head=head)


_HOOKS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
          "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
          "_backward_pre_hooks")


def frozen_copy(model: nn.Module, state: dict | None = None) -> nn.Module:
    """A deep copy of ``model`` in eval mode, no parameter trainable, no gradient kept, no
    hook; with ``state``, that state dict loaded into it."""
    # Hooks on the model belong to whoever registered them (feature capture, counters) and
    # must not fire on the copy's forward; a hook that is a bound method would also drag
    # its owner into the deep copy. So the copy gets none: `memo` maps each hook dict to an
    # empty one.
    memo = {
        id(hooks): type(hooks)()
        for module in model.modules()
        for name in _HOOKS
        if (hooks := getattr(module, name, None))
    }
    frozen = copy.deepcopy(model, memo)
    if state is not None:
        frozen.load_state_dict(state)
    for p in frozen.parameters():
        p.requires_grad_(False)
        p.grad = None
    return frozen.eval()
class ResNet50(nn.Module):
    """torchvision's ResNet-50 (He et al. 2016) for IIRC-ImageNet: 2048-d features, one head.

    ``weights=None`` (the IIRC recipe trains from scratch); pass torchvision weights, e.g.
    ``torchvision.models.ResNet50_Weights.IMAGENET1K_V2``, only if pretraining on all of
    ImageNet is what you mean to study: it has seen every class of every task.
    Unlike ``ResNetCIFAR`` the last block keeps torchvision's output ReLU, so the cosine head
    sees non-negative features (the IIRC reference's ImageNet model is not in its package,
    so we do not claim to match it there).
    """

    feature_dim = 2048

    def __init__(self, num_classes: int, head: str = "linear", weights=None):
        super().__init__()
        from torchvision.models import resnet50 as torchvision_resnet50

        if head not in ("linear", "cosine"):
            raise ValueError(f"head must be 'linear' or 'cosine', got {head!r}")
        self.num_classes = num_classes
        self.backbone = torchvision_resnet50(weights=weights)
        self.backbone.fc = nn.Identity()          # our head replaces torchvision's 1000-way fc
        if head == "linear":
            self.head = nn.Linear(self.feature_dim, num_classes)
        else:
            self.head = CosineLinear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def resnet50(num_classes: int = 1083, head: str = "linear", weights=None) -> ResNet50:
    """ResNet-50 for 224x224 images; `head` is "linear" (default) or "cosine" (LUCIR)."""
    return ResNet50(num_classes, head=head, weights=weights)


MODELS = {"resnet32": resnet32, "resnet50": resnet50}


def build_model(name: str, num_classes: int, head: str = "linear") -> nn.Module:
    """A model from ``MODELS`` by name (the protocols' ``model`` option)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name](num_classes, head=head)
