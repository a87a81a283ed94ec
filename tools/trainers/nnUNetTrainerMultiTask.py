"""nnU-Net trainer class of the multi-task fixture model (segmentation only, for nnU-Net's predictor).

Checkpoints of ``tests/fixtures/models/multitask_ct`` name ``nnUNetTrainerMultiTask`` as their
trainer. nnU-Net's predictor rebuilds the network through this class's
``build_network_architecture``; it returns the multi-task module of
``tools/networks/multitask_resenc.py`` with ``return_classification = False``, so the checkpoint
loads strictly (head included) and the predictor sees a plain segmentation network.

Make nnU-Net find it with ``nnUNet_extTrainer=<repo>/tools/trainers``.
The weights were trained by ``tools/make_fixtures.py``; this class does not train.
"""

import importlib.util
import os
import sys

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

_NETWORK_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "networks",
                             "multitask_resenc.py")
_MODULE_NAME = "nnunet_rt_multitask_resenc"


def _network_module():
    if _MODULE_NAME in sys.modules:
        return sys.modules[_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, os.path.normpath(_NETWORK_FILE))
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


class nnUNetTrainerMultiTask(nnUNetTrainer):
    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                   num_output_channels, enable_deep_supervision: bool = True):
        if enable_deep_supervision:
            raise NotImplementedError("nnUNetTrainerMultiTask is for inference only (deep supervision off)")
        return _network_module().build_from_architecture(
            configuration_manager.network_arch_init_kwargs,
            configuration_manager.network_arch_init_kwargs_req_import,
            num_input_channels, num_output_channels, return_classification=False)
