"""Reference multi-task network: nnU-Net's ResidualEncoderUNet plus a case classification head.

The head sits on the encoder bottleneck (the output of the last encoder stage): global pooling
(average and maximum over all voxels, concatenated: 2 x C_bottleneck features) ->
Linear(2 C, HIDDEN) -> LeakyReLU -> Linear(HIDDEN, n_classes). This is the layout of the original
pancreas system (shared encoder, segmentation decoder, classification MLP on globally pooled
deepest features). The maximum is there because the bottleneck features pass through instance
normalisation, which leaves their spatial average with little information about a small lesion.

``forward`` returns ``(seg_logits, cls_logits)`` while ``return_classification`` is True (the
default, used for ONNX export). With ``return_classification = False`` it returns only the
segmentation logits, so the very same module and weights can be driven by nnU-Net's own
``nnUNetPredictor`` (which expects one tensor); see ``tools/trainers/nnUNetTrainerMultiTask.py``.

Use with the exporter::

    python tools/export_onnx.py MODEL_DIR --network-module tools/networks/multitask_resenc.py \
        --class-names subtype0,subtype1,subtype2

The head's size is fixed by ``NUM_CLASSES`` and ``HIDDEN`` below; edit them (or write your own
module with the same ``build_network`` signature) if a checkpoint's head differs. Loading a
checkpoint is strict, so a mismatch is reported, never silently ignored.
"""

from __future__ import annotations

import pydoc

import torch
from torch import nn

from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

NUM_CLASSES = 3
HIDDEN = 32


class MultiTaskResEncUNet(ResidualEncoderUNet):
    """ResidualEncoderUNet whose forward also returns classification logits from the bottleneck."""

    def __init__(self, *args, num_cls_classes: int = NUM_CLASSES, cls_hidden: int = HIDDEN,
                 return_classification: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        bottleneck = self.encoder.output_channels[-1]
        self.cls_head = nn.Sequential(
            nn.Linear(2 * bottleneck, cls_hidden),
            nn.LeakyReLU(negative_slope=0.01),
            nn.Linear(cls_hidden, num_cls_classes),
        )
        self.return_classification = return_classification

    def classify(self, bottleneck: torch.Tensor) -> torch.Tensor:
        # global average and maximum pooling over all spatial axes
        flat = bottleneck.flatten(2)
        pooled = torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1)
        return self.cls_head(pooled)

    def forward(self, x):
        skips = self.encoder(x)
        seg = self.decoder(skips)
        if not self.return_classification:
            return seg
        return seg, self.classify(skips[-1])


def _arch_kwargs(arch_kwargs: dict, requires_import) -> dict:
    kwargs = dict(arch_kwargs)
    for key in requires_import:
        if kwargs.get(key) is not None:
            kwargs[key] = pydoc.locate(kwargs[key])
    return kwargs


def build_from_architecture(arch_kwargs: dict, requires_import, num_input_channels: int, num_outputs: int,
                            return_classification: bool = True,
                            num_cls_classes: int = NUM_CLASSES) -> MultiTaskResEncUNet:
    """Builds the network from a plans ``architecture`` entry (deep supervision off)."""
    kwargs = _arch_kwargs(arch_kwargs, requires_import)
    kwargs["deep_supervision"] = False
    net = MultiTaskResEncUNet(input_channels=num_input_channels, num_classes=num_outputs,
                              num_cls_classes=num_cls_classes,
                              return_classification=return_classification, **kwargs)
    if hasattr(net, "initialize"):
        net.apply(net.initialize)
    return net


def build_network(plans: dict, dataset_json: dict, configuration: str, num_input_channels: int,
                  num_outputs: int) -> nn.Module:
    """Entry point used by ``tools/export_onnx.py --network-module``."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    cm = PlansManager(plans).get_configuration(configuration)
    return build_from_architecture(cm.network_arch_init_kwargs, cm.network_arch_init_kwargs_req_import,
                                   num_input_channels, num_outputs, return_classification=True)
