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
            "Segments scalar volumes (one per model input channel) with a trained nnU-Net v2 model folder "
            "(exported to ONNX with nnunet-rt's tools/export_onnx.py) or a .nnrt bundle. The prediction runs in "
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
        self.taskOptions = None
        self.taskEstimate = None
        self.inputSelectors = []

        inputs = ctk.ctkCollapsibleButton()
        inputs.text = "Inputs"
        self.layout.addWidget(inputs)
        self.inputsForm = qt.QFormLayout(inputs)

        # The browse button picks a folder (ctkPathLineEdit browses either folders or files);
        # "Bundle..." picks a .nnrt file. A typed or pasted path may be either.
        self.modelPathEdit = ctk.ctkPathLineEdit()
        self.modelPathEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.modelPathEdit.settingKey = "NnunetRt/ModelFolder"
        self.modelPathEdit.toolTip = (
            "nnU-Net model folder (plans.json, dataset.json, fold_N/model.onnx), or a .nnrt bundle file"
        )
        self.bundleButton = qt.QPushButton("Bundle...")
        self.bundleButton.toolTip = "Choose a .nnrt bundle file instead of a model folder"
        modelRow = qt.QHBoxLayout()
        modelRow.addWidget(self.modelPathEdit, 1)
        modelRow.addWidget(self.bundleButton)
        self.inputsForm.addRow("Model:", modelRow)
        self.modelInfoLabel = qt.QLabel("")
        self.modelInfoLabel.wordWrap = True
        self.inputsForm.addRow("", self.modelInfoLabel)
        # One selector per input channel, rebuilt from the model's channel names.
        self.setChannelNames(["input"])

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

        self.roiFocusCheck = qt.QCheckBox()
        self.roiFocusCheck.checked = False
        self.roiFocusCheck.toolTip = (
            "Opt-in, not nnU-Net's algorithm: a cheap first pass, then the full pass only near its foreground"
        )
        optionsForm.addRow("ROI focus:", self.roiFocusCheck)

        self.postprocessingCheck = qt.QCheckBox()
        self.postprocessingCheck.checked = True
        self.postprocessingCheck.toolTip = "Apply the model's postprocessing.json (nnU-Net's connected-component rules) if it has one"
        optionsForm.addRow("Postprocessing:", self.postprocessingCheck)

        self.previousStageEdit = ctk.ctkPathLineEdit()
        self.previousStageEdit.filters = ctk.ctkPathLineEdit.Dirs
        self.previousStageEdit.settingKey = "NnunetRt/PreviousStageFolder"
        self.previousStageEdit.toolTip = (
            "Cascades only: the 3d_lowres model folder, when it is not nnU-Net's sibling folder of the model"
        )
        optionsForm.addRow("Previous stage:", self.previousStageEdit)

        self.probabilitiesCheck = qt.QCheckBox()
        self.probabilitiesCheck.checked = False
        self.probabilitiesCheck.toolTip = "Also add one probability volume (softmax, 0..1) per foreground label"
        optionsForm.addRow("Probability volumes:", self.probabilitiesCheck)

        self.estimateButton = qt.QPushButton("Estimate")
        self.estimateButton.toolTip = "Network evaluations, memory and (after a first run) time, before running"
        self.estimateLabel = qt.QLabel("")
        self.estimateLabel.wordWrap = True
        self.layout.addWidget(self.estimateButton)
        self.layout.addWidget(self.estimateLabel)

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
        self.stagesLabel = qt.QLabel("")
        self.layout.addWidget(self.stagesLabel)
        self.statusLabel = qt.QLabel("")
        self.statusLabel.wordWrap = True
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
        self.estimateButton.connect("clicked(bool)", self.onEstimate)
        self.bundleButton.connect("clicked(bool)", self.onChooseBundle)
        self.modelPathEdit.connect("currentPathChanged(QString)", self.onModelPathChanged)
        self.onModelPathChanged(self.modelPathEdit.currentPath)

    def cleanup(self):
        if self.task is not None:
            self.task.cancel()
        self.timer.stop()
        self.logic.close()

    # -- inputs -----------------------------------------------------------------------------

    def setChannelNames(self, names):
        """One volume selector per model input channel, labelled with the channel's name."""
        for _, selector in self.inputSelectors:
            self.inputsForm.removeRow(selector)
        self.inputSelectors = []
        for name in names:
            selector = slicer.qMRMLNodeComboBox()
            selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
            selector.selectNodeUponCreation = True
            selector.addEnabled = False
            selector.removeEnabled = False
            selector.noneEnabled = False
            selector.showHidden = False
            selector.setMRMLScene(slicer.mrmlScene)
            selector.toolTip = f"Volume for the model's input channel '{name}' (all on one grid)"
            self.inputsForm.addRow(f"Input volume ({name}):" if len(names) > 1 else "Input volume:", selector)
            self.inputSelectors.append((name, selector))

    def onChooseBundle(self):
        path = qt.QFileDialog.getOpenFileName(
            self.parent, "nnunet-rt model bundle", self.modelPathEdit.currentPath, "nnunet-rt bundle (*.nnrt);;All files (*)"
        )
        if path:
            self.modelPathEdit.currentPath = path

    def onModelPathChanged(self, path):
        kind = rtlogic.model_kind(path)
        if kind is None:
            self.modelInfoLabel.text = "Choose a model folder or a .nnrt bundle." if not path else "Not found."
            return
        try:
            info = self.logic.describeModel(path)
        except Exception as exc:  # an unreadable model is reported when it is loaded
            self.modelInfoLabel.text = f"{kind}: {exc}"
            return
        self.modelInfoLabel.text = f"{kind}: {info['summary']}"
        if [name for name, _ in self.inputSelectors] != info["channels"]:
            self.setChannelNames(info["channels"])

    def currentOptions(self):
        return rtlogic.ModelOptions(
            path=self.modelPathEdit.currentPath,
            folds=tuple(rtlogic.parse_folds(self.foldsEdit.text) or ()) or None,
            device=self.deviceCombo.currentText,
            network_precision=self.networkPrecisionCombo.currentText,
            threads=self.threadsSpin.value or None,
            postprocessing=self.postprocessingCheck.checked,
            previous_stage_model=self.previousStageEdit.currentPath or None,
        )

    def predictOptions(self):
        return {
            "step_size": self.stepSizeSpin.value,
            "tta": self.ttaCheck.checked,
            "roi_focus": self.roiFocusCheck.checked,
            "probabilities": self.probabilitiesCheck.checked,
        }

    def inputVolumes(self):
        return [selector.currentNode() for _, selector in self.inputSelectors]

    # -- actions ----------------------------------------------------------------------------

    def onEstimate(self):
        volumeNodes = self.inputVolumes()
        if not self.modelPathEdit.currentPath or any(v is None for v in volumeNodes):
            self.estimateLabel.text = "Select a model and the input volume(s) first."
            return
        try:
            estimate = self.logic.estimate(volumeNodes, self.currentOptions(), **self.predictOptions())
        except Exception as exc:
            logging.exception("nnunet-rt: no estimate")
            self.estimateLabel.text = f"No estimate: {exc}"
            return
        self.estimateLabel.text = estimate.text()

    def onApply(self):
        if self.task is not None:
            return
        volumeNodes = self.inputVolumes()
        options = self.currentOptions()
        if not options.path or any(v is None for v in volumeNodes):
            slicer.util.errorDisplay("Select a model (folder or .nnrt bundle) and the input volume(s).")
            return
        self.modelPathEdit.addCurrentPathToHistory()
        try:
            self.task = self.logic.start(volumeNodes, options, **self.predictOptions())
        except Exception as exc:
            logging.exception("nnunet-rt: could not start")
            slicer.util.errorDisplay(f"Could not start: {exc}")
            return
        self.taskVolumeNode = volumeNodes[0]
        self.taskOptions = options
        self.applyButton.enabled = False
        self.cancelButton.enabled = True
        self.progressBar.value = 0
        self.statusLabel.text = "Using the loaded model..." if options in self.logic.cache else "Loading the model..."
        self.stagesLabel.text = ""
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
        if stage != "loading":
            self.stagesLabel.text = rtlogic.stage_text(task.stage_progress)
        if not task.cancel_requested and stage != "loading":
            self.statusLabel.text = f"{stage.capitalize()}: {fraction * 100:.0f}%"
        if not task.done:
            return
        self.timer.stop()
        self.task = None
        volumeNode, self.taskVolumeNode = self.taskVolumeNode, None
        self.applyButton.enabled = True
        self.cancelButton.enabled = False
        self.logic.keepModel(self.taskOptions, task)
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
            probabilityNodes = self.logic.createProbabilityVolumes(output, volumeNode)
        except Exception as exc:
            logging.exception("nnunet-rt: could not create the segmentation")
            slicer.util.errorDisplay(f"Could not create the segmentation: {exc}")
            return
        self.logic.recordRate(self.taskOptions, task)
        timings = output.prediction.timings_ms
        extra = f" and {len(probabilityNodes)} probability volumes" if probabilityNodes else ""
        self.statusLabel.text = f"Done in {sum(timings.values()) / 1000:.1f} s: {segmentationNode.GetName()}{extra}"
        self.progressBar.value = 1000
        self.showClassification(output)

    def showClassification(self, output):
        self.subtypeLabel.text = f"Predicted: {output.subtype}" if output.subtype else "No classification head."
        self.classTable.setRowCount(len(output.classes))
        for row, (name, probability) in enumerate(output.classes):
            self.classTable.setItem(row, 0, qt.QTableWidgetItem(name))
            self.classTable.setItem(row, 1, qt.QTableWidgetItem(f"{probability:.4f}"))


class NnunetRtLogic(ScriptedLoadableModuleLogic):
    """MRML side of a run: reads the volumes, starts the worker, writes the results. The
    Slicer-free parts (model cache, estimate, the run itself) are in NnunetRtLib."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.cache = rtlogic.ModelCache()
        # Seconds per network evaluation measured on the last run, per model options.
        self.rates = {}
        self.estimates = {}

    @staticmethod
    def volumeArrays(volumeNodes):
        """Copies of the volumes (k, j, i) and the first one's IJKToRAS; all must share a grid."""
        arrays, matrices = [], []
        for node in volumeNodes:
            if node.GetImageData() is None:
                raise ValueError(f"{node.GetName()} has no image data")
            # A copy: the worker must not read voxels the scene may change or free meanwhile.
            arrays.append(np.array(slicer.util.arrayFromVolume(node), copy=True))
            matrix = vtk.vtkMatrix4x4()
            node.GetIJKToRASMatrix(matrix)
            matrices.append(slicer.util.arrayFromVTKMatrix(matrix))
        for node, array, matrix in zip(volumeNodes[1:], arrays[1:], matrices[1:]):
            if array.shape != arrays[0].shape or not np.allclose(matrix, matrices[0], atol=1e-6):
                raise ValueError(f"{node.GetName()} is not on the grid of {volumeNodes[0].GetName()}")
        return arrays, matrices[0]

    def describeModel(self, path):
        """Channel names and a one-line summary of a model path: read from a folder's
        dataset.json; a bundle is loaded (once, then cached) to ask the library."""
        if rtlogic.model_kind(path) == "folder":
            return rtlogic.describe_folder(path)
        return rtlogic.describe_model(self.cache.load(rtlogic.ModelOptions(path=path)), path)

    def estimate(self, volumeNodes, options, **predictOptions):
        arrays, ijkToRas = self.volumeArrays(volumeNodes)
        model = self.cache.load(options)
        estimate = rtlogic.estimate_for_model(
            model,
            arrays[0].shape,
            ijkToRas,
            channels=len(arrays),
            tta=predictOptions.get("tta", True),
            step_size=predictOptions.get("step_size", 0.5),
            probabilities=predictOptions.get("probabilities", False),
            seconds_per_evaluation=self.rates.get(options),
        )
        return estimate

    def start(self, volumeNodes, options, **predictOptions):
        """Starts a background run on copies of the volumes; returns the SegmentationTask."""
        arrays, ijkToRas = self.volumeArrays(volumeNodes)
        volume = arrays[0] if len(arrays) == 1 else arrays
        task = rtlogic.SegmentationTask(self.cache.source(options), volume, ijkToRas, **predictOptions)
        task.estimateInputs = (arrays[0].shape, ijkToRas, len(arrays), predictOptions)
        return task.start()

    def keepModel(self, options, task):
        """Caches the task's model for the next run, unless a panic made it unusable."""
        self.cache.keep(options, task)

    def recordRate(self, options, task):
        """Remembers the measured time per network evaluation, for the next estimate."""
        if task.model is None or task.result is None:
            return
        shape, ijkToRas, channels, predictOptions = task.estimateInputs
        estimate = rtlogic.estimate_for_model(
            task.model, shape, ijkToRas, channels=channels, tta=predictOptions.get("tta", True),
            step_size=predictOptions.get("step_size", 0.5),
        )
        rate = rtlogic.seconds_per_evaluation(task.result, estimate)
        if rate is not None:
            self.rates[options] = rate

    def close(self):
        self.cache.close()

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

    def createProbabilityVolumes(self, output, volumeNode):
        """One scalar volume (float32, 0..1) per foreground label when probabilities were asked for."""
        if output.probabilities is None:
            return []
        nodes = []
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        for spec in output.segments:
            name = slicer.mrmlScene.GenerateUniqueName(f"{volumeNode.GetName()} p({spec.name})")
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
            slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(output.probabilities[spec.value]))
            node.SetIJKToRASMatrix(matrix)
            node.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
            nodes.append(node)
        return nodes


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
