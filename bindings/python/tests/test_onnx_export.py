"""The ONNX export (`ddaebm-train export --onnx`, docs/onnx.md) run by ONNX Runtime gives the
library's energies: the fixture's three vector models, one per training method, and its image
model."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import ddaebm

# docs/onnx.md: |E_onnx - E| <= 1e-4 * max(1, |E|) on rows the model was not trained on.
TOLERANCE = 1e-4


@pytest.mark.parametrize(
    "model_name, energies, inputs",
    [
        ("model", "energy", "rows"),
        ("gcd_model", "gcd_energy", "rows"),
        ("dcd_model", "dcd_energy", "rows"),
        ("image_model", "image_energy", "image_rows"),
    ],
)
def test_onnx_runtime_gives_the_library_energies(fixture_dir, info, model_name, energies, inputs):
    path = fixture_dir / f"{model_name}.onnx"
    flat = np.fromfile(fixture_dir / f"{inputs}.f32", dtype="<f4")
    n = int(info["rows"] if inputs == "rows" else info["image_rows"])
    rows = flat.reshape(n, -1)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    props = {p.key: p.value for p in proto.metadata_props}
    with ddaebm.Model(fixture_dir / f"{model_name}.safetensors") as m:
        assert np.float32(props["ddaebm.threshold"]) == np.float32(m.threshold)
        assert props["ddaebm.method"] == m.metadata["method"]
        assert int(props["ddaebm.input_dim"]) == rows.shape[1]
    want = np.fromfile(fixture_dir / f"{energies}.f32", dtype="<f4")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["energy"], {"x": rows})[0]
    assert got.dtype == np.float32 and got.shape == want.shape
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max() <= TOLERANCE, (err.max(), int(err.argmax()))
    # The batch dimension is dynamic: one row and an odd batch give the same energies.
    for n in (1, 7):
        part = session.run(["energy"], {"x": rows[:n]})[0]
        assert part.shape == (n,)
        assert (np.abs(part - got[:n]) <= TOLERANCE * np.maximum(1.0, np.abs(got[:n]))).all()
    # The verdict against the stored threshold is the library's on every fixture row.
    assert ((got > np.float32(props["ddaebm.threshold"])) == (want > m.threshold)).all()


def test_the_graph_is_the_documented_interface(fixture_dir):
    proto = onnx.load(fixture_dir / "model.onnx")
    graph = proto.graph
    assert [i.name for i in graph.input] == ["x"] and [o.name for o in graph.output] == ["energy"]
    x_dims = graph.input[0].type.tensor_type.shape.dim
    assert x_dims[0].dim_param == "N" and x_dims[1].dim_value == 4
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {o.domain: o.version for o in proto.opset_import} == {"": 17}
    assert proto.producer_name == "ddaebm"
