"""The README's runnable example runs from a source checkout."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "segment_synthetic.py"


def test_example_runs(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE), "--no-tta"],
        cwd=tmp_path,  # any working directory
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "label voxels:" in completed.stdout and "pancreas" in completed.stdout
    assert "predicted class: subtype" in completed.stdout


def test_example_runs_on_a_bundle_in_memory(tmp_path):
    import nnunet_rt

    bundle = tmp_path / "model.nnrt"
    nnunet_rt.write_bundle(Path(__file__).resolve().parents[3] / "tests/fixtures/models/multitask_ct", bundle)
    outputs = []
    for model in ([], [str(bundle)]):
        completed = subprocess.run(
            [sys.executable, str(EXAMPLE), *model, "--no-tta"], cwd=tmp_path, env=dict(os.environ),
            capture_output=True, text=True, timeout=300,
        )
        assert completed.returncode == 0, completed.stderr
        outputs.append([line for line in completed.stdout.splitlines() if line.startswith(("label", "predicted"))])
    assert outputs[0] == outputs[1] and outputs[0]
