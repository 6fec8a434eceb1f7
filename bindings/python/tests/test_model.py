"""The Python binding against the shared fixture: the Rust library's own results for the same
model and rows (written by xtask/src/bindings_fixture.rs)."""

import dataclasses
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import bits

import ddaebm


@pytest.fixture
def model(fixture_dir):
    with ddaebm.Model(fixture_dir / "model.safetensors") as m:
        yield m


def test_getters(model, info):
    assert model.input_dim == int(info["dim"])
    assert np.float32(model.threshold) == np.float32(float(info["threshold"]))
    meta = model.metadata
    assert meta["network"]["input_dim"] == model.input_dim
    assert "calibration" in meta and "schedule" in meta
    assert ddaebm.library_version() == ddaebm.__version__


def test_scores_are_bit_identical_to_rust(model, rows, fixture_dir):
    energy = model.energy(rows)
    assert energy.dtype == np.float32 and energy.shape == (len(rows),)
    assert (bits(energy) == bits(np.fromfile(fixture_dir / "energy.f32", dtype="<f4"))).all()
    e2, is_ood = model.screen(rows)
    assert (bits(e2) == bits(energy)).all()
    assert is_ood.dtype == bool
    assert (is_ood == np.fromfile(fixture_dir / "is_ood.u8", dtype=np.uint8).astype(bool)).all()
    assert (is_ood == (energy > model.threshold)).all()
    p = model.pvalues(rows)
    assert (bits(p) == bits(np.fromfile(fixture_dir / "pvalue.f32", dtype="<f4"))).all()


def test_explain_is_bit_identical_to_rust(model, rows, fixture_dir):
    a = model.explain(rows)
    assert a.dtype == np.float32 and a.shape == (len(rows), model.input_dim)
    want = np.fromfile(fixture_dir / "explain.f32", dtype="<f4").reshape(len(rows), -1)
    assert (bits(a) == bits(want)).all()
    assert np.isfinite(a).all()
    # The same conversions as energy: any float dtype, layout or nested lists.
    assert (bits(model.explain(np.asfortranarray(rows))) == bits(want)).all()
    assert (bits(model.explain(rows.tolist())) == bits(want)).all()
    # A 1-D array is one row; an empty batch gives an empty (0, input_dim) array.
    assert model.explain(rows[3]).shape == (1, model.input_dim)
    assert model.explain(np.empty((0, model.input_dim))).shape == (0, model.input_dim)


def test_explain_errors(model, rows):
    with pytest.raises(ddaebm.ShapeMismatchError, match="^ddaebm_explain: row_len is 3 but the model expects 4"):
        model.explain(rows[:, :3])
    with pytest.raises(ddaebm.ShapeMismatchError, match="2-D array"):
        model.explain(rows.reshape(2, -1, model.input_dim))
    x = rows.copy()
    x[5, 2] = np.nan
    with pytest.raises(ddaebm.NonFiniteError, match="^ddaebm_explain: .*row 5, column 2") as e:
        model.explain(x)
    assert e.value.status == ddaebm.Status.NON_FINITE
    # The model stays usable after a failure.
    assert model.explain(rows).shape == rows.shape


@pytest.fixture(scope="session")
def drift_want(fixture_dir):
    """drift.f64: Rust's (p_value, effect, z) of all rows, then of the first rows / 2."""
    values = struct.unpack("<6d", (fixture_dir / "drift.f64").read_bytes())
    return values[:3], values[3:]


def drift_bits(d):
    """(p_value, effect, z) of a DriftResult as bytes, for bit-exact comparisons."""
    return struct.pack("<3d", d.p_value, d.effect, d.z)


def test_drift_is_bit_identical_to_rust(model, rows, info, drift_want):
    want_all, want_half = drift_want
    calibration_rows = int(info["calibration_rows"])
    d = model.drift(rows)
    assert isinstance(d, ddaebm.DriftResult)
    assert drift_bits(d) == struct.pack("<3d", *want_all)
    assert (d.batch_rows, d.calibration_rows) == (len(rows), calibration_rows)
    assert all(type(v) is float for v in (d.p_value, d.effect, d.z))
    assert type(d.batch_rows) is int and type(d.calibration_rows) is int
    # Half of the rows are far away: a tiny p-value, batch energies above the calibration's.
    assert 0 < d.p_value < 1e-4 and d.effect > 0.5 and d.z > 0
    half = model.drift(rows[: len(rows) // 2])
    assert drift_bits(half) == struct.pack("<3d", *want_half)
    assert (half.batch_rows, half.calibration_rows) == (len(rows) // 2, calibration_rows)
    assert d.p_value < half.p_value <= 1 and 0 <= half.effect <= 1
    # The same numpy float64 bits, the other way round.
    got = np.array([d.p_value, d.effect, d.z], dtype=np.float64)
    assert (got.view(np.uint64) == np.array(want_all, dtype="<f8").view(np.uint64)).all()


def test_drift_input_handling(model, rows):
    ref = drift_bits(model.drift(rows))
    # The same conversions as energy: any float dtype, layout or nested lists.
    assert drift_bits(model.drift(rows.astype(np.float64))) == ref
    assert drift_bits(model.drift(np.asfortranarray(rows))) == ref
    assert drift_bits(model.drift(rows.tolist())) == ref
    # A 1-D array is one row.
    one = model.drift(rows[3])
    assert one.batch_rows == 1 and 0 < one.p_value <= 1
    # The result is immutable.
    d = model.drift(rows)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.p_value = 0.5  # type: ignore[misc]


def test_drift_errors(model, rows):
    with pytest.raises(ddaebm.InvalidArgumentError, match="^ddaebm_drift: .*at least one row") as e:
        model.drift(np.empty((0, model.input_dim)))
    assert e.value.status == ddaebm.Status.INVALID_ARGUMENT
    with pytest.raises(ddaebm.ShapeMismatchError, match="^ddaebm_drift: row_len is 3 but the model expects 4"):
        model.drift(rows[:, :3])
    with pytest.raises(ddaebm.ShapeMismatchError, match="2-D array"):
        model.drift(rows.reshape(2, -1, model.input_dim))
    for bad in (np.nan, np.inf, -np.inf):
        x = rows.copy()
        x[5, 2] = bad
        with pytest.raises(ddaebm.NonFiniteError, match="^ddaebm_drift: .*row 5, column 2") as e:
            model.drift(x)
        assert e.value.status == ddaebm.Status.NON_FINITE
    # The model stays usable after a failure.
    assert model.drift(rows).batch_rows == len(rows)


@pytest.mark.parametrize(
    "name, method, sampler",
    [
        # A model of another training method (GCD, Gaussian-policy sampler).
        ("gcd", "gcd", "gaussian_policy"),
        # A model of a third training method (DCD, Langevin sampler on the energy).
        ("dcd", "dcd", "langevin"),
    ],
)
def test_a_model_of_another_method_scores_and_samples_like_rust(
    rows, info, fixture_dir, name, method, sampler
):
    # The same calls as for the default model, bit for bit against Rust.
    with ddaebm.Model(fixture_dir / f"{name}_model.safetensors") as m:
        assert m.metadata["method"] == method and m.metadata["sampler"] == sampler
        want = np.fromfile(fixture_dir / f"{name}_energy.f32", dtype="<f4")
        assert (bits(m.energy(rows)) == bits(want)).all()
        n, seed = int(info["sample_rows"]), int(info["sample_seed"])
        s = m.sample(n, seed=seed)
        want = np.fromfile(fixture_dir / f"{name}_sample.f32", dtype="<f4").reshape(n, -1)
        assert (bits(s) == bits(want)).all()


def test_sample_is_bit_identical_and_seeded(model, info, fixture_dir):
    n, seed = int(info["sample_rows"]), int(info["sample_seed"])
    s = model.sample(n, seed=seed)
    assert s.shape == (n, model.input_dim) and s.dtype == np.float32
    assert (bits(s) == bits(np.fromfile(fixture_dir / "sample.f32", dtype="<f4").reshape(n, -1))).all()
    assert (bits(model.sample(n, seed=seed)) == bits(s)).all()
    assert not np.array_equal(model.sample(n, seed=seed + 1), s)
    assert model.sample(0).shape == (0, model.input_dim)
    assert model.sample(3, seed=2**64 - 1).shape == (3, model.input_dim)


def test_accepts_anything_convertible(model, rows):
    ref = model.energy(rows)
    assert (bits(model.energy(rows.astype(np.float64))) == bits(ref)).all()
    assert (bits(model.energy(np.asfortranarray(rows))) == bits(ref)).all()
    assert (bits(model.energy(rows.tolist())) == bits(ref)).all()
    wide = np.repeat(rows, 2, axis=1)  # every column twice: a strided, non-contiguous view
    assert (bits(model.energy(wide[:, ::2])) == bits(ref)).all()
    # 1-D = one row. Matrix products round differently for other batch sizes, so a row scored
    # alone agrees with the batch to float32 rounding, not bit for bit.
    np.testing.assert_allclose(model.energy(rows[3]), ref[3:4], rtol=1e-5, atol=1e-5)
    assert model.energy(np.empty((0, model.input_dim))).shape == (0,)


def test_wrong_shapes_raise_with_the_library_message(model, rows):
    with pytest.raises(ddaebm.ShapeMismatchError, match="row_len is 3 but the model expects 4") as e:
        model.energy(rows[:, :3])
    assert e.value.status == ddaebm.Status.SHAPE_MISMATCH
    assert isinstance(e.value, ValueError)
    with pytest.raises(ddaebm.ShapeMismatchError, match="2-D array"):
        model.screen(rows.reshape(2, -1, model.input_dim))
    with pytest.raises(ddaebm.ShapeMismatchError):
        model.pvalues(np.zeros(model.input_dim + 1))


@pytest.fixture
def image_model(fixture_dir):
    with ddaebm.Model(fixture_dir / "image_model.safetensors") as m:
        yield m


@pytest.fixture(scope="session")
def image_shape(info):
    return tuple(int(info[k]) for k in ("image_channels", "image_height", "image_width"))


@pytest.fixture(scope="session")
def images(fixture_dir, info, image_shape):
    """The fixture images as an (n, C, H, W) array (image_rows.f32 is that array, flat)."""
    flat = np.fromfile(fixture_dir / "image_rows.f32", dtype="<f4")
    return flat.reshape(int(info["image_rows"]), *image_shape)


def test_image_shape(image_model, model, image_shape):
    assert image_model.image_shape == image_shape
    assert image_model.input_dim == int(np.prod(image_shape))
    assert image_model.metadata["network"]["image"]["channels"] == image_shape[0]
    assert model.image_shape is None


def test_image_energy_is_bit_identical_to_rust(image_model, images, fixture_dir):
    want = bits(np.fromfile(fixture_dir / "image_energy.f32", dtype="<f4"))
    # Flat rows of C·H·W values, channel-major ...
    flat = images.reshape(len(images), -1)
    assert (bits(image_model.energy(flat)) == want).all()
    # ... or the (n, C, H, W) array itself, also through a non-contiguous view.
    assert (bits(image_model.energy(images)) == want).all()
    nhwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    assert (bits(image_model.energy(nhwc.transpose(0, 3, 1, 2))) == want).all()
    energy, is_ood = image_model.screen(images)
    assert (bits(energy) == want).all() and (is_ood == (energy > image_model.threshold)).all()
    assert image_model.pvalues(images).shape == (len(images),)
    d = image_model.drift(images)
    assert d.batch_rows == len(images) and drift_bits(d) == drift_bits(image_model.drift(flat))
    assert image_model.energy(images[:0]).shape == (0,)
    attribution = image_model.explain(images[:2])
    assert attribution.dtype == np.float32 and attribution.shape == (2, flat.shape[1])
    assert (bits(attribution) == bits(image_model.explain(flat[:2]))).all()


def test_image_shapes_are_checked(image_model, model, images, image_shape):
    c, h, w = image_shape
    with pytest.raises(ddaebm.ShapeMismatchError, match=rf"\(n, {c}, {h}, {w}\) array of images") as e:
        image_model.energy(images.transpose(0, 1, 3, 2))  # (n, C, W, H)
    assert e.value.status == ddaebm.Status.SHAPE_MISMATCH
    with pytest.raises(ddaebm.ShapeMismatchError, match="4-D array"):
        image_model.energy(images[0])  # one (C, H, W) image: not a batch
    with pytest.raises(ddaebm.ShapeMismatchError, match="2-D array"):
        model.energy(images)  # a vector model takes no 4-D arrays


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_raise(model, rows, bad):
    x = rows.copy()
    x[5, 2] = bad
    with pytest.raises(ddaebm.NonFiniteError, match="^ddaebm_screen: .*row 5, column 2") as e:
        model.screen(x)
    assert e.value.status == ddaebm.Status.NON_FINITE


@pytest.mark.parametrize(
    "name, exc, status",
    [
        ("missing.safetensors", ddaebm.ModelIOError, ddaebm.Status.IO),
        ("truncated.safetensors", ddaebm.BadModelError, ddaebm.Status.BAD_MODEL),
        ("random.safetensors", ddaebm.BadModelError, ddaebm.Status.BAD_MODEL),
        ("future.safetensors", ddaebm.UnsupportedVersionError, ddaebm.Status.UNSUPPORTED_VERSION),
    ],
)
def test_bad_model_files_raise(fixture_dir, name, exc, status):
    with pytest.raises(exc) as e:
        ddaebm.Model(fixture_dir / name)
    assert e.value.status == status
    assert str(e.value)  # the library's message


def test_missing_file_is_an_oserror(fixture_dir):
    with pytest.raises(OSError, match="missing.safetensors"):
        ddaebm.Model(fixture_dir / "missing.safetensors")


def test_devices_and_threads(fixture_dir, rows):
    path = fixture_dir / "model.safetensors"
    with pytest.raises(ddaebm.InvalidArgumentError, match="unknown device"):
        ddaebm.Model(path, device="tpu")
    with pytest.raises(ddaebm.DeviceUnavailableError, match="cuda"):
        ddaebm.Model(path, device="cuda")
    with pytest.raises(ValueError):
        ddaebm.Model(path, threads=-1)
    with pytest.raises(ddaebm.InvalidArgumentError, match="at most 1024"):
        ddaebm.Model(path, threads=5000)
    with pytest.raises(ddaebm.ModelIOError, match="not a regular file"):
        ddaebm.Model(path.parent)
    with ddaebm.Model(path, threads=1) as one, ddaebm.Model(path, threads=2) as two:
        assert (bits(one.energy(rows)) == bits(two.energy(rows))).all()


def test_close_is_idempotent_and_final(fixture_dir, rows):
    m = ddaebm.Model(fixture_dir / "model.safetensors")
    m.close()
    m.close()
    assert m.closed and "closed" in repr(m)
    with pytest.raises(ValueError, match="closed"):
        m.energy(rows)
    with pytest.raises(ValueError, match="closed"):
        m.sample(1)
    with pytest.raises(ValueError, match="closed"):
        m.drift(rows)
    with ddaebm.Model(fixture_dir / "model.safetensors") as m2:
        assert not m2.closed
    assert m2.closed


def test_bad_sample_arguments(model):
    for n in (-1, 1.5):
        with pytest.raises(ValueError):
            model.sample(n)
    with pytest.raises(ValueError):
        model.sample(1, seed=-1)


def test_threads_share_one_model(model, rows):
    ref = model.energy(rows)
    ref_samples = model.sample(8, seed=3)
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(
                    (bits(model.energy(rows)) == bits(ref)).all()
                    and (bits(model.sample(8, seed=3)) == bits(ref_samples)).all()
                )
            model.energy(rows[:, :2])
        except ddaebm.ShapeMismatchError as e:
            # each thread sees its own failure's message
            results.append("row_len is 2" in str(e))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 8 * 21 and all(results)


def test_close_waits_for_calls_in_flight(fixture_dir, rows):
    m = ddaebm.Model(fixture_dir / "model.safetensors")
    big = np.tile(rows, (2000, 1))
    outcomes = []

    def work():
        try:
            outcomes.append(m.energy(big).shape)
        except ValueError as e:
            outcomes.append(str(e))

    t = threading.Thread(target=work)
    t.start()
    m.close()
    t.join()
    assert outcomes in ([(len(big),)], ["the model is closed"])


def test_missing_library_gives_a_clear_error(tmp_path):
    env = dict(os.environ, DDAEBM_LIBRARY=str(tmp_path / "nowhere.so"))
    code = "import ddaebm\ntry:\n    ddaebm.Model('x')\nexcept ddaebm.LibraryNotFoundError as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "DDAEBM_LIBRARY" in out.stdout and "nowhere.so (not found)" in out.stdout


def test_an_installed_wheel_loads_its_own_library():
    if "DDAEBM_LIBRARY" in os.environ:
        pytest.skip("DDAEBM_LIBRARY chooses the library")
    package = Path(ddaebm.__file__).resolve().parent
    if not (package / "libddaebm.so").exists():
        pytest.skip("a source install without a bundled library")
    assert Path(ddaebm.library_path()).resolve() == package / "libddaebm.so"
    assert ddaebm.library_version().split(".")[:2] == ddaebm.__version__.split(".")[:2]


def test_shared_model_opens_a_file_once_per_process(fixture_dir, rows, tmp_path):
    import shutil

    path = tmp_path / "m.safetensors"
    shutil.copyfile(fixture_dir / "model.safetensors", path)
    a = ddaebm.shared_model(path, threads=1)
    assert ddaebm.shared_model(str(path), threads=1) is a
    assert ddaebm.shared_model(path, threads=2) is not a  # other options, another model
    results = []
    threads = [threading.Thread(target=lambda: results.append(ddaebm.shared_model(path, threads=1))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m is a for m in results)
    a.close()
    b = ddaebm.shared_model(path, threads=1)  # closed: reopened
    assert b is not a and not b.closed
    assert (bits(b.energy(rows)) == bits(np.fromfile(fixture_dir / "energy.f32", dtype="<f4"))).all()
    # A file replaced on disk is opened afresh.
    shutil.copyfile(fixture_dir / "model.safetensors", tmp_path / "new")
    os.utime(tmp_path / "new", ns=(0, 10**18))
    os.replace(tmp_path / "new", path)
    assert ddaebm.shared_model(path, threads=1) is not b
    with pytest.raises(FileNotFoundError):
        ddaebm.shared_model(tmp_path / "missing.safetensors")
