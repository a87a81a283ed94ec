"""3D Slicer scripted module: segment a scalar volume with an nnU-Net v2 model, in process,
through nnunet-rt (bindings/python). The logic lives in nnunet_rt_slicer_logic (no Slicer
imports); this file is the GUI and the MRML glue only."""

import logging

import ctk
import numpy as np
import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from NnunetRtLib import nnunet_rt_slicer_logic as rtlogic


class NnunetRt(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "nnU-Net (nnunet-rt)"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["nnunet-rt developers"]
        self.parent.helpText = (
            "Segments the selected scalar volume with a trained nnU-Net v2 model folder "
            "(3d_fullres, exported to ONNX with nnunet-rt's tools/export_onnx.py). The prediction runs in "
            "Slicer's process on a worker thread and can be cancelled. Models with a classification head "
            "also report the predicted class and its probability."
        )
        self.parent.acknowledgementText = "Uses nnunet-rt, which reproduces nnU-Net's inference through ONNX Runtime."


class NnunetRtWidget(ScriptedLoadableModuleWidget):
    POLL_MS = 100

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = NnunetRtLogic()
        self.task = None
        self.taskVolumeNode = None

        inputs = ctk.ctkCollapsibleButton()
        inputs.text = "Inputs"
        self.layout.addWidget(inputs)
        form = qt.QFormLayout(inputs)

        self.modelPathEdit = ctk.ctkPathLineEdit()
        self.modelPathEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.modelPathEdit.settingKey = "NnunetRt/ModelFolder"
        self.modelPathEdit.toolTip = "nnU-Net model folder (plans.json, dataset.json, fold_N/model.onnx)"
        form.addRow("Model folder:", self.modelPathEdit)

        self.volumeSelector = slicer.qMRMLNodeComboBox()
        self.volumeSelector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
        self.volumeSelector.selectNodeUponCreation = True
        self.volumeSelector.addEnabled = False
        self.volumeSelector.removeEnabled = False
        self.volumeSelector.noneEnabled = False
        self.volumeSelector.showHidden = False
        self.volumeSelector.setMRMLScene(slicer.mrmlScene)
        self.volumeSelector.toolTip = "Volume to segment (single-channel models)"
        form.addRow("Input volume:", self.volumeSelector)

        options = ctk.ctkCollapsibleButton()
        options.text = "Options"
        options.collapsed = True
        self.layout.addWidget(options)
        optionsForm = qt.QFormLayout(options)

        self.foldsEdit = qt.QLineEdit()
        self.foldsEdit.placeholderText = "every exported fold"
        self.foldsEdit.toolTip = "Fold names separated by commas or spaces, e.g. 0,1,2 or all"
        optionsForm.addRow("Folds:", self.foldsEdit)

        self.stepSizeSpin = qt.QDoubleSpinBox()
        self.stepSizeSpin.setRange(0.05, 1.0)
        self.stepSizeSpin.singleStep = 0.05
        self.stepSizeSpin.value = 0.5
        self.stepSizeSpin.toolTip = "Sliding-window step as a fraction of the patch (nnU-Net default 0.5)"
        optionsForm.addRow("Step size:", self.stepSizeSpin)

        self.ttaCheck = qt.QCheckBox()
        self.ttaCheck.checked = True
        self.ttaCheck.toolTip = "Mirroring test-time augmentation (nnU-Net default; up to 8x slower)"
        optionsForm.addRow("Mirroring (TTA):", self.ttaCheck)

        self.deviceCombo = qt.QComboBox()
        self.deviceCombo.addItems(["auto", "cpu", "openvino", "cuda"])
        self.deviceCombo.toolTip = (
            "auto: OpenVINO on the CPU when its plugin is installed, else ONNX Runtime's CPU provider; "
            "cuda needs a CUDA build of nnunet-rt"
        )
        optionsForm.addRow("Device:", self.deviceCombo)

        self.networkPrecisionCombo = qt.QComboBox()
        self.networkPrecisionCombo.addItems(["f32", "bf16"])
        self.networkPrecisionCombo.toolTip = (
            "f32: nnU-Net's answer. bf16: opt-in, OpenVINO on CPUs with AVX512_BF16/AMX; faster there, "
            "changes a few voxels"
        )
        optionsForm.addRow("Network precision:", self.networkPrecisionCombo)

        self.threadsSpin = qt.QSpinBox()
        self.threadsSpin.setRange(0, 256)
        self.threadsSpin.value = 0
        self.threadsSpin.specialValueText = "one per core"
        optionsForm.addRow("Threads:", self.threadsSpin)

        buttons = qt.QHBoxLayout()
        self.applyButton = qt.QPushButton("Segment")
        self.cancelButton = qt.QPushButton("Cancel")
        self.cancelButton.enabled = False
        buttons.addWidget(self.applyButton)
        buttons.addWidget(self.cancelButton)
        self.layout.addLayout(buttons)

        self.progressBar = qt.QProgressBar()
        self.progressBar.setRange(0, 1000)
        self.progressBar.value = 0
        self.layout.addWidget(self.progressBar)
        self.statusLabel = qt.QLabel("")
        self.layout.addWidget(self.statusLabel)

        results = ctk.ctkCollapsibleButton()
        results.text = "Classification"
        self.layout.addWidget(results)
        resultsLayout = qt.QVBoxLayout(results)
        self.subtypeLabel = qt.QLabel("")
        resultsLayout.addWidget(self.subtypeLabel)
        self.classTable = qt.QTableWidget()
        self.classTable.setColumnCount(2)
        self.classTable.setHorizontalHeaderLabels(["Class", "Probability"])
        self.classTable.horizontalHeader().setStretchLastSection(True)
        self.classTable.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        resultsLayout.addWidget(self.classTable)
        self.layout.addStretch(1)

        self.timer = qt.QTimer()
        self.timer.setInterval(self.POLL_MS)
        self.timer.connect("timeout()", self.poll)
        self.applyButton.connect("clicked(bool)", self.onApply)
        self.cancelButton.connect("clicked(bool)", self.onCancel)

    def cleanup(self):
        if self.task is not None:
            self.task.cancel()
        self.timer.stop()
        self.logic.close()

    # -- actions ----------------------------------------------------------------------------

    def onApply(self):
        if self.task is not None:
            return
        volumeNode = self.volumeSelector.currentNode()
        modelFolder = self.modelPathEdit.currentPath
        if volumeNode is None or not modelFolder:
            slicer.util.errorDisplay("Select a model folder and an input volume.")
            return
        self.modelPathEdit.addCurrentPathToHistory()
        folds = [f for f in self.foldsEdit.text.replace(",", " ").split() if f] or None
        try:
            self.task = self.logic.start(
                volumeNode,
                modelFolder,
                folds=folds,
                device=self.deviceCombo.currentText,
                network_precision=self.networkPrecisionCombo.currentText,
                threads=self.threadsSpin.value or None,
                step_size=self.stepSizeSpin.value,
                tta=self.ttaCheck.checked,
            )
        except Exception as exc:
            logging.exception("nnunet-rt: could not start")
            slicer.util.errorDisplay(f"Could not start: {exc}")
            return
        self.taskVolumeNode = volumeNode
        self.applyButton.enabled = False
        self.cancelButton.enabled = True
        self.progressBar.value = 0
        self.statusLabel.text = "Loading the model..."
        self.subtypeLabel.text = ""
        self.classTable.setRowCount(0)
        self.timer.start()

    def onCancel(self):
        if self.task is not None:
            self.task.cancel()
            self.cancelButton.enabled = False
            self.statusLabel.text = "Cancelling..."

    def poll(self):
        """Runs on the main thread (timer): mirrors progress, and finishes a completed run."""
        task = self.task
        if task is None:
            self.timer.stop()
            return
        stage, fraction, overall = task.progress
        self.progressBar.value = int(round(overall * 1000))
        if not task.cancel_requested and stage != "loading":
            self.statusLabel.text = f"{stage.capitalize()}: {fraction * 100:.0f}%"
        if not task.done:
            return
        self.timer.stop()
        self.task = None
        volumeNode, self.taskVolumeNode = self.taskVolumeNode, None
        self.applyButton.enabled = True
        self.cancelButton.enabled = False
        self.logic.keepModel(task)
        if task.error is not None:
            if isinstance(task.error, rtlogic.import_nnunet_rt().Cancelled):
                self.statusLabel.text = "Cancelled."
                self.progressBar.value = 0
            else:
                self.statusLabel.text = "Failed."
                logging.error("nnunet-rt: %s", task.error)
                slicer.util.errorDisplay(f"Segmentation failed: {task.error}")
            return
        output = task.result
        try:
            segmentationNode = self.logic.createSegmentationNode(output, volumeNode)
        except Exception as exc:
            logging.exception("nnunet-rt: could not create the segmentation")
            slicer.util.errorDisplay(f"Could not create the segmentation: {exc}")
            return
        timings = output.prediction.timings_ms
        self.statusLabel.text = f"Done in {sum(timings.values()) / 1000:.1f} s: {segmentationNode.GetName()}"
        self.progressBar.value = 1000
        self.showClassification(output)

    def showClassification(self, output):
        self.subtypeLabel.text = f"Predicted: {output.subtype}" if output.subtype else "No classification head."
        self.classTable.setRowCount(len(output.classes))
        for row, (name, probability) in enumerate(output.classes):
            self.classTable.setItem(row, 0, qt.QTableWidgetItem(name))
            self.classTable.setItem(row, 1, qt.QTableWidgetItem(f"{probability:.4f}"))


class NnunetRtLogic(ScriptedLoadableModuleLogic):
    """MRML side of a run: reads the volume, starts the worker, writes the segmentation."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.models = {}

    def start(
        self, volumeNode, modelFolder, *, folds=None, device="auto", network_precision="f32", threads=None, **options
    ):
        """Starts a background run on a copy of the volume; returns the SegmentationTask."""
        if volumeNode.GetImageData() is None:
            raise ValueError(f"{volumeNode.GetName()} has no image data")
        # A copy: the worker must not read voxels the scene may change or free meanwhile.
        volume = np.array(slicer.util.arrayFromVolume(volumeNode), copy=True)
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        ijkToRas = slicer.util.arrayFromVTKMatrix(matrix)
        key = (modelFolder, tuple(folds or ()), device, network_precision, threads)
        model = self.models.get(key)
        if model is None:
            nnunet_rt = rtlogic.import_nnunet_rt()

            def loadModel():  # runs on the worker thread
                return nnunet_rt.Model(
                    modelFolder, folds=folds, device=device, network_precision=network_precision, threads=threads
                )

            model = loadModel
        task = rtlogic.SegmentationTask(model, volume, ijkToRas, **options)
        task.cacheKey = key
        return task.start()

    def keepModel(self, task):
        """Caches the task's model for the next run, unless a panic made it unusable."""
        nnunet_rt = rtlogic.import_nnunet_rt()
        if isinstance(task.error, (nnunet_rt.Panic, nnunet_rt.Poisoned)):
            model = self.models.pop(task.cacheKey, None) or task.model
            if model is not None:
                model.close()
        elif task.model is not None:
            self.models[task.cacheKey] = task.model

    def close(self):
        for model in self.models.values():
            model.close()
        self.models.clear()

    def createSegmentationNode(self, output, volumeNode):
        """A segmentation node with one segment per foreground label, on the input's grid."""
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLSegmentationNode", slicer.mrmlScene.GenerateUniqueName(f"{volumeNode.GetName()} nnU-Net")
        )
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        segmentation = segmentationNode.GetSegmentation()
        for spec in output.segments:
            segmentId = segmentation.AddEmptySegment("", spec.name)
            segmentation.GetSegment(segmentId).SetColor(*spec.color)
            mask = (output.labels == spec.value).astype(np.uint8)
            slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentationNode, segmentId, volumeNode)
        return segmentationNode


class NnunetRtTest(ScriptedLoadableModuleTest):
    """Checks the geometry glue against Slicer's own volume node (no model needed)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_geometry_matches_volume_node()

    def test_geometry_matches_volume_node(self):
        volumeNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
        slicer.util.updateVolumeFromArray(volumeNode, np.zeros((4, 5, 6), dtype=np.int16))
        volumeNode.SetSpacing(0.7, 0.8, 2.5)
        volumeNode.SetOrigin(-10.0, 20.0, 30.0)
        volumeNode.SetIJKToRASDirections(-1, 0, 0, 0, 0, 1, 0, -1, 0)
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        ijkToRas = slicer.util.arrayFromVTKMatrix(matrix)
        geometry = rtlogic.itk_geometry_from_ijk_to_ras(ijkToRas)
        np.testing.assert_allclose(geometry.spacing, (0.7, 0.8, 2.5))
        roundTrip = rtlogic.ijk_to_ras_from_itk_geometry(geometry.spacing, geometry.origin, geometry.direction)
        np.testing.assert_allclose(roundTrip, ijkToRas, atol=1e-12)
        self.delayDisplay("Geometry conversion matches the volume node")
