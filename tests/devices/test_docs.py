"""docs/devices.md lists every parameter of every model as the code defines it."""

from tests.conftest import ROOT
from vmenergy.devices.population import params_doc

MARKER = "<!-- parameters: generated from the models' Params -->\n"


def test_the_parameter_tables_of_the_docs_are_the_models_own():
    text = (ROOT / "docs" / "devices.md").read_text()
    assert MARKER in text
    assert text.split(MARKER, 1)[1] == params_doc(), "regenerate the tables: vmenergy.devices.population.params_doc()"
