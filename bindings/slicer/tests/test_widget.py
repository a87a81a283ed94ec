"""NnunetRt.py's widget and MRML logic driven without Slicer: qt, ctk, vtk and slicer are
MagicMock stand-ins, so this catches wrong names and wrong wiring in the GUI code (every control
read into the run's options, the per-channel selectors, the poll loop), not Qt behaviour."""

import importlib
import sys
import types
from unittest import mock

import numpy as np
import pytest

from nnrt_testing import MODELS, ROOT


class _Toolkit(types.ModuleType):
    """qt / ctk: every class is a MagicMock whose calls make a new widget (MagicMock)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = mock.MagicMock(name=f"{self.__name__}.{name}", side_effect=lambda *a, **k: mock.MagicMock())
        setattr(self, name, cls)
        return cls


class _Widget:
    def __init__(self, parent=None):
        self.parent = parent

    def setup(self):
        self.layout = mock.MagicMock()


@pytest.fixture
def module(monkeypatch):
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    scripted.ScriptedLoadableModule = type("ScriptedLoadableModule", (), {"__init__": lambda self, parent: None})
    scripted.ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (), {"__init__": lambda self: None})
    scripted.ScriptedLoadableModuleWidget = _Widget
    scripted.ScriptedLoadableModuleTest = type("ScriptedLoadableModuleTest", (), {})
    slicer = mock.MagicMock(name="slicer")
    slicer.ScriptedLoadableModule = scripted
    slicer.qMRMLNodeComboBox.side_effect = lambda *a, **k: mock.MagicMock()
    for name, value in {"slicer": slicer, "slicer.ScriptedLoadableModule": scripted, "qt": _Toolkit("qt"),
                        "ctk": _Toolkit("ctk"), "vtk": mock.MagicMock(name="vtk")}.items():
        monkeypatch.setitem(sys.modules, name, value)
    monkeypatch.delitem(sys.modules, "NnunetRt", raising=False)
    return importlib.import_module("NnunetRt")


def test_widget_reads_every_control_into_the_run(module, tmp_path):
    widget = module.NnunetRtWidget()
    widget.setup()
    # One selector until a model says otherwise; a two-channel folder gives two, named.
    assert len(widget.inputSelectors) == 1
    widget.onModelPathChanged(str(MODELS / "two_channel"))
    names = [name for name, _ in widget.inputSelectors]
    assert len(names) == 2 and names == module.rtlogic.channel_names(MODELS / "two_channel", 2)
    widget.onModelPathChanged(str(ROOT / "demo" / "model"))
    assert [name for name, _ in widget.inputSelectors] == ["CT"]
    assert "pancreas, lesion" in widget.modelInfoLabel.text

    widget.modelPathEdit.currentPath = str(ROOT / "demo" / "model")
    widget.foldsEdit.text = "0, 1"
    widget.deviceCombo.currentText = "cpu"
    widget.networkPrecisionCombo.currentText = "f32"
    widget.threadsSpin.value = 2
    widget.postprocessingCheck.checked = False
    widget.previousStageEdit.currentPath = ""
    widget.stepSizeSpin.value = 0.7
    widget.ttaCheck.checked = False
    widget.roiFocusCheck.checked = True
    widget.probabilitiesCheck.checked = True
    options = widget.currentOptions()
    assert options == module.rtlogic.ModelOptions(path=str(ROOT / "demo" / "model"), folds=("0", "1"), device="cpu",
                                                  network_precision="f32", threads=2, postprocessing=False)
    assert widget.predictOptions() == {"step_size": 0.7, "tta": False, "roi_focus": True, "probabilities": True}


def test_widget_runs_polls_and_keeps_the_model(module):
    from nnrt_testing import load_case

    case = load_case("multitask_lesion")
    ijk_to_ras = module.rtlogic.ijk_to_ras_from_itk_geometry(case.spacing, case.origin, case.direction)
    widget = module.NnunetRtWidget()
    widget.setup()
    widget.modelPathEdit.currentPath = str(MODELS / "multitask_ct")
    widget.onModelPathChanged(widget.modelPathEdit.currentPath)
    widget.foldsEdit.text = "0"
    widget.deviceCombo.currentText = "cpu"
    widget.networkPrecisionCombo.currentText = "f32"
    widget.threadsSpin.value = 0
    widget.postprocessingCheck.checked = True
    widget.previousStageEdit.currentPath = ""
    widget.stepSizeSpin.value = 0.5
    widget.ttaCheck.checked = False
    widget.roiFocusCheck.checked = False
    widget.probabilitiesCheck.checked = False
    volume = mock.MagicMock(name="volumeNode")
    volume.GetName.return_value = "case"
    widget.inputSelectors[0][1].currentNode.return_value = volume
    module.slicer.util.arrayFromVolume.return_value = case.image
    module.slicer.util.arrayFromVTKMatrix.return_value = ijk_to_ras
    created = []
    widget.logic.createSegmentationNode = lambda output, node: created.append(output) or mock.MagicMock()
    widget.logic.createProbabilityVolumes = lambda output, node: []

    widget.onEstimate()
    assert "network evaluations" in widget.estimateLabel.text, widget.estimateLabel.text
    options = widget.currentOptions()
    assert options in widget.logic.cache  # the estimate loaded it; the run reuses it
    widget.onApply()
    task = widget.task
    assert task is not None and task.model is widget.logic.cache.get(options)
    assert task.wait(120)
    widget.poll()
    assert widget.task is None and task.error is None, task.error
    assert created and np.array_equal(created[0].labels, task.result.labels)
    assert widget.stagesLabel.text.startswith("Preprocess 100%")
    assert widget.statusLabel.text.startswith("Done in")
    assert widget.logic.rates.get(options, 0) > 0
    widget.onEstimate()
    assert "~" in widget.estimateLabel.text
    widget.cleanup()
