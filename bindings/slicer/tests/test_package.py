"""The Slicer extension package (`cargo xtask slicer-extension`) works where Slicer installs it.

The archive is unpacked the way Slicer's Extensions Manager installs a file ("Install from
file"): into <extensions>/NnunetRt/, its top folder's content moved up. Then a fresh Python
process, with only what Slicer would put on its paths for the extension (qt-scripted-modules)
plus stub `slicer`/`vtk`/`qt`/`ctk` modules, imports the module file and segments the demo volume
(demo/ct.nii.gz, demo/model) with the module's logic: both folds, mirroring, as nnU-Net does. No
NNUNET_RT_* / ORT_DYLIB_PATH variable and no LD_LIBRARY_PATH is set: the package must find
libnnunet_rt beside itself, and the library ONNX Runtime and OpenVINO beside itself.

The archive is the one named by NNUNET_RT_SLICER_PACKAGE (`cargo xtask test` builds it and sets
it); without it this test builds one (`cargo xtask slicer-extension --debug`). Failing to build
it is a failure, never a skip.
"""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nnrt_testing import ROOT, read_nifti

ENV_PACKAGE = "NNUNET_RT_SLICER_PACKAGE"
# nnU-Net 2.8.1 on the demo (folds 0+1, step 0.5, mirroring): tests/demo.rs, demo/README.md.
EXPECTED_COUNTS = {"pancreas": 1579, "lesion": 95}

STUBS = {
    # What NnunetRt.py imports from Slicer, reduced to names.
    "slicer/__init__.py": "mrmlScene = None\nfrom . import util\n",
    "slicer/util.py": "",
    "slicer/ScriptedLoadableModule.py": (
        "class ScriptedLoadableModule:\n    def __init__(self, parent):\n        self.parent = parent\n"
        "class ScriptedLoadableModuleLogic:\n    def __init__(self):\n        pass\n"
        "class ScriptedLoadableModuleWidget:\n    pass\n"
        "class ScriptedLoadableModuleTest:\n    pass\n"
    ),
    "vtk.py": "",
    "qt.py": "",
    "ctk.py": "",
}

RUN = r'''
import json, sys
from pathlib import Path
import numpy as np

tree = Path(sys.argv[1])
import NnunetRt  # the module file, as Slicer loads it
from NnunetRtLib import nnunet_rt_slicer_logic as rtlogic
import nnunet_rt

logic = NnunetRt.NnunetRtLogic()  # the module's own logic class and model cache
options = rtlogic.ModelOptions(path=sys.argv[2])
volume = np.load(sys.argv[3])
ijk_to_ras = np.load(sys.argv[4])
info = rtlogic.describe_folder(options.path)
model = logic.cache.load(options)
estimate = rtlogic.estimate_for_model(model, volume.shape, ijk_to_ras)
task = rtlogic.SegmentationTask(logic.cache.source(options), volume, ijk_to_ras).start()
task.wait(600)
if task.error is not None:
    raise task.error
logic.keepModel(options, task)
output = task.result
names = output.prediction.label_names
counts = {name: int((output.labels == value).sum()) for value, name in enumerate(names)}
maps = Path("/proc/self/maps").read_text() if Path("/proc/self/maps").exists() else ""
# Shared objects of ours mapped into the process (ONNX Runtime also maps a database file of its own).
loaded = sorted({line.split()[-1] for line in maps.splitlines()
                 if any(n in line for n in ("onnxruntime", "nnunet_rt", "openvino", "libtbb")) and ".so" in line.split()[-1]})
print(json.dumps({
    "package": nnunet_rt.__file__,
    "module": NnunetRt.__file__,
    "library": str(model.library.path),
    "runtime": model.runtime_info,
    "counts": counts,
    "subtype": output.subtype,
    "stages": task.stage_progress,
    "cached": logic.cache.get(options) is model,
    "channels": info["channels"],
    "evaluations": estimate.evaluations,
    "loaded": loaded,
}))
logic.close()
'''


def _ijk_to_ras(path: Path) -> np.ndarray:
    """Slicer's IJKToRAS of a NIfTI file: its sform rows (RAS), as Slicer shows the volume."""
    import gzip
    import struct

    raw = gzip.open(path).read(348)
    assert struct.unpack("<h", raw[254:256])[0] > 0, "the demo volume has an sform"
    matrix = np.eye(4)
    matrix[:3, :] = np.array(struct.unpack("<12f", raw[280:328]), dtype=np.float64).reshape(3, 4)
    return matrix


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    named = os.environ.get(ENV_PACKAGE)
    if named:
        archive = Path(named)
        assert archive.is_file(), f"{ENV_PACKAGE}={named} does not exist"
        return archive
    out = tmp_path_factory.mktemp("slicer-package")
    cargo = os.environ.get("CARGO", "cargo")
    done = subprocess.run(
        [cargo, "xtask", "slicer-extension", "--debug", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert done.returncode == 0, f"cargo xtask slicer-extension failed ({done.returncode}):\n{done.stdout}"
    return Path(done.stdout.strip().splitlines()[-1])


def _install(archive: Path, extensions: Path) -> Path:
    """What Slicer's Extensions Manager does with "Install from file": find the .s4ext in the
    archive, extract into <extensions>/<name>/, move the top folder's content up."""
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        descriptions = [n for n in names if n.endswith(".s4ext")]
        assert len(descriptions) == 1, f"one extension description expected in the archive: {descriptions}"
        name = Path(descriptions[0]).stem
        assert all(not m.issym() and not m.islnk() for m in tar.getmembers()), "links do not survive Slicer's copy"
        target = extensions / name
        target.mkdir(parents=True)
        tar.extractall(target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (top,) = list(target.iterdir())
    for entry in top.iterdir():
        entry.rename(target / entry.name)
    top.rmdir()
    return target


def test_installed_package_segments_the_demo_without_environment(package, tmp_path):
    extension = _install(package, tmp_path / "Slicer" / "Extensions-33216")
    (slicer_lib,) = list((extension / "lib").glob("Slicer-*"))
    x_y = slicer_lib.name[len("Slicer-"):]
    description = (extension / "share" / f"Slicer-{x_y}" / "NnunetRt.s4ext").read_text()
    assert "\ncategory Segmentation\n" in description, description
    scripted = slicer_lib / "qt-scripted-modules"
    for file in ["NnunetRt.py", "NnunetRtLib/nnunet_rt_slicer_logic.py", "Resources/Icons/NnunetRt.png",
                 "nnunet_rt/__init__.py", "nnunet_rt/_lib.py", "nnunet_rt/model.py"]:
        assert (scripted / file).is_file(), f"{file} missing from qt-scripted-modules"
    for pattern in ["libnnunet_rt.so", "libonnxruntime.so.*", "libonnxruntime_providers_openvino_plugin.so", "libopenvino.so.*"]:
        assert list(slicer_lib.glob(pattern)), f"{pattern} missing from lib/Slicer-{x_y}"
    notices = extension / "share" / f"Slicer-{x_y}" / "NnunetRt"
    for file in ["LICENSE", "LICENSE-MIT", "LICENSE-APACHE", "THIRD_PARTY_NOTICES.md"]:
        assert (notices / file).is_file(), f"{file} missing"

    stubs = tmp_path / "stubs"
    for name, text in STUBS.items():
        (stubs / name).parent.mkdir(parents=True, exist_ok=True)
        (stubs / name).write_text(text)
    image = read_nifti(ROOT / "demo" / "ct.nii.gz")
    np.save(tmp_path / "volume.npy", np.ascontiguousarray(image.data))
    np.save(tmp_path / "ijk_to_ras.npy", _ijk_to_ras(ROOT / "demo" / "ct.nii.gz"))

    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("NNUNET_RT_") or k in ("ORT_DYLIB_PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME"))}
    # Slicer puts qt-scripted-modules on the Python path of an installed extension.
    env["PYTHONPATH"] = os.pathsep.join([str(scripted), str(stubs)])
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(extension), str(ROOT / "demo" / "model"),
         str(tmp_path / "volume.npy"), str(tmp_path / "ijk_to_ras.npy")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900,
    )
    assert done.returncode == 0, f"the module's run failed:\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))

    inside = lambda path: Path(path).resolve().is_relative_to(extension.resolve())  # noqa: E731
    assert inside(report["package"]) and inside(report["module"]), report
    assert Path(report["library"]).resolve() == (slicer_lib / "libnnunet_rt.so").resolve(), report
    runtime = report["runtime"]
    assert inside(runtime["onnxruntime_library"]), runtime
    assert runtime["device"] == "openvino" and runtime["openvino"], f"the packed OpenVINO plugin was not used: {runtime}"
    assert inside(runtime["openvino"]["path"]), runtime
    assert report["loaded"] and all(inside(p) for p in report["loaded"]), report["loaded"]
    assert report["counts"]["pancreas"] == EXPECTED_COUNTS["pancreas"], report["counts"]
    assert report["counts"]["lesion"] == EXPECTED_COUNTS["lesion"], report["counts"]
    assert report["subtype"].startswith("subtype0 (p = "), report["subtype"]
    assert report["stages"] == {"preprocess": 1.0, "network": 1.0, "export": 1.0}, report["stages"]
    assert report["cached"] and report["channels"] == ["CT"], report
    assert report["evaluations"] > 0


# A stand-in for Slicer's SlicerConfig.cmake: the variables and the macro the extension's
# CMakeLists.txt uses, with the values of Slicer X.Y's install layout (CMake/SlicerDirectories.cmake).
FAKE_SLICER_CONFIG = """
set(Slicer_USE_FILE "${CMAKE_CURRENT_LIST_DIR}/empty.cmake")
set(Slicer_EXTENSION_GENERATE_CONFIG "${CMAKE_CURRENT_LIST_DIR}/empty.cmake")
set(Slicer_EXTENSION_CPACK "${CMAKE_CURRENT_LIST_DIR}/empty.cmake")
set(Slicer_INSTALL_THIRDPARTY_LIB_DIR "lib/Slicer-@XY@")
set(Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR "lib/Slicer-@XY@/qt-scripted-modules")
function(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(M "WITH_GENERIC_TESTS" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  foreach(f ${M_SCRIPTS} ${M_RESOURCES})
    get_filename_component(d "${f}" DIRECTORY)
    install(FILES "${CMAKE_CURRENT_SOURCE_DIR}/${f}" DESTINATION "${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/${d}")
  endforeach()
endfunction()
"""


def test_extension_cmakelists_installs_the_prebuilt_package(package, tmp_path):
    """bindings/slicer/CMakeLists.txt (what the Extensions Index builds) installs the same tree as
    the package: from its archive's URL + SHA256, and from an unpacked folder."""
    import hashlib
    import shutil

    cmake = shutil.which("cmake")
    if cmake is None:
        assert os.environ.get("NNUNET_RT_ALLOW_SKIP") == "1", "cmake is not installed"
        pytest.skip("cmake is not installed (NNUNET_RT_ALLOW_SKIP=1)")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(package) as tar:
        tar.extractall(unpacked, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (top,) = list(unpacked.iterdir())
    (slicer_lib,) = list((top / "lib").glob("Slicer-*"))
    x_y = slicer_lib.name[len("Slicer-"):]
    fake = tmp_path / "fake-slicer"
    fake.mkdir()
    (fake / "SlicerConfig.cmake").write_text(FAKE_SLICER_CONFIG.replace("@XY@", x_y))
    (fake / "empty.cmake").write_text("")
    sha256 = hashlib.sha256(package.read_bytes()).hexdigest()

    def install(name, *options):
        build, prefix = tmp_path / f"build-{name}", tmp_path / f"install-{name}"
        for command in ([cmake, "-S", str(ROOT / "bindings" / "slicer"), "-B", str(build), f"-DSlicer_DIR={fake}", *options],
                        [cmake, "--install", str(build), "--prefix", str(prefix)]):
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}"
        return sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file())

    expected = sorted(str(p.relative_to(top)) for p in (top / "lib").rglob("*") if p.is_file())
    assert install("url", f"-DNNUNET_RT_NATIVE_URL={package.resolve().as_uri()}",
                   f"-DNNUNET_RT_NATIVE_SHA256={sha256}") == expected
    assert install("dir", f"-DNNUNET_RT_NATIVE_DIR={slicer_lib}") == expected
    # Without the native libraries the configuration stops and says how to get them.
    done = subprocess.run([cmake, "-S", str(ROOT / "bindings" / "slicer"), "-B", str(tmp_path / "build-none"),
                           f"-DSlicer_DIR={fake}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode != 0 and "cargo xtask slicer-extension" in done.stdout, done.stdout


def test_extensions_index_entry_follows_the_catalog_schema():
    """NnunetRt.json has the keys of Slicer's catalog entry schema v1.0.2 and nothing else."""
    entry = json.loads((ROOT / "bindings" / "slicer" / "NnunetRt.json").read_text())
    allowed = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
               "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
    assert set(entry) <= allowed and {"$schema", "category", "scm_url"} <= set(entry), entry
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert entry["category"] == "Segmentation" and entry["scm_type"] in ("git", "local")
    assert isinstance(entry["build_dependencies"], list) and isinstance(entry["enabled"], bool)
    assert 1 <= entry["tier"] <= 5
