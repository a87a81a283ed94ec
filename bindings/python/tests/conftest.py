import sys
from pathlib import Path

import pytest

# Import the package from this checkout (no install needed); an installed copy also works.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nnunet_rt  # noqa: E402
from nnrt_testing import MODELS, load_case  # noqa: E402


@pytest.fixture(scope="session")
def multitask_model():
    with nnunet_rt.Model(MODELS / "multitask_ct") as model:
        yield model


@pytest.fixture(scope="session")
def fast_model():
    """One fold of the multi-task model: quick predictions for API tests."""
    with nnunet_rt.Model(MODELS / "multitask_ct", folds=["0"]) as model:
        yield model


@pytest.fixture(scope="session")
def lesion_case():
    return load_case("multitask_lesion")
