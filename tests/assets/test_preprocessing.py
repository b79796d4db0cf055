"""Preprocessing of the embedded benchmarks (raw, match, standardize) and a user's own OOD sets.

Exact histogram specification is checked against scikit-image's ``match_histograms`` where the two
must agree (no ties), and by its defining properties where they differ (ties); standardisation against
TensorFlow's formula computed by hand in numpy.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.exposure import match_histograms

from ashlib import ParameterError
from ashlib.assets.data import (
    DEFAULT_PREPROCESSING, OOD_KINDS, PREPROCESSINGS, SANITY_KIND, Benchmark, ImageFiles, load_benchmark,
    match_histograms_exact, match_streams, read_image_folder, standardize_images,
)


def _gens(seed: int = 0):
    return np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])


def _sorted_rows(x: torch.Tensor) -> np.ndarray:
    return np.sort(x.reshape(len(x), -1).numpy(), axis=1)


@pytest.fixture(scope="module")
def raw():
    return load_benchmark(n_ood=200, preprocessing="raw")


@pytest.fixture(scope="module")
def matched():
    return load_benchmark(n_ood=200, preprocessing="match")


# ------------------------------------------------------------------------ exact histogram matching


def test_match_streams_rebuild_the_benchmarks_matched_set_exactly(raw, matched):
    """What chapter 00's exercise on ties does: the matched letters, rebuilt from the raw ones."""
    rebuilt = match_histograms_exact(raw.ood["letters"], raw.x_train, *match_streams(raw.seed, "letters"))
    assert torch.equal(rebuilt, matched.ood["letters"])


def test_exact_matching_equals_skimage_when_nothing_is_tied():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((5, 1, 6, 7)).astype(np.float32))
    ref = torch.from_numpy(rng.random((3, 1, 6, 7)).astype(np.float32))
    pick, ties = _gens()
    j = np.random.default_rng([0, 1]).integers(0, 3, size=5)  # the draws `pick` will make
    out = match_histograms_exact(x, ref, pick, ties)
    for i in range(5):
        want = match_histograms(x[i, 0].numpy(), ref[j[i], 0].numpy())
        np.testing.assert_allclose(out[i, 0].numpy(), want, rtol=0, atol=1e-7)


def test_exact_matching_gives_the_reference_values_keeps_ranks_and_leaves_inputs_alone():
    rng = np.random.default_rng(1)
    x = torch.from_numpy((rng.random((20, 1, 8, 8)) > 0.7).astype(np.float32) * rng.random((20, 1, 8, 8)))
    ref = torch.from_numpy(np.round(rng.random((10, 1, 8, 8)), 1).astype(np.float32))  # many ties
    x0, ref0 = x.clone(), ref.clone()
    pick, ties = _gens(3)
    j = np.random.default_rng([3, 1]).integers(0, 10, size=20)
    out = match_histograms_exact(x, ref, pick, ties)
    assert torch.equal(x, x0) and torch.equal(ref, ref0)
    np.testing.assert_array_equal(_sorted_rows(out), _sorted_rows(ref[j]))  # exactly its values
    flat_x, flat_y = x.reshape(20, -1), out.reshape(20, -1)
    a, b = np.triu_indices(64, 1)
    for i in range(20):
        xa, xb, ya, yb = flat_x[i, a], flat_x[i, b], flat_y[i, a], flat_y[i, b]
        assert bool(((xa < xb) <= (ya <= yb)).all()) and bool(((xb < xa) <= (yb <= ya)).all())
    # skimage maps tied pixels to one interpolated value: its result does not have the reference's values
    sk = match_histograms(x[0, 0].numpy(), ref[j[0], 0].numpy())
    assert not np.array_equal(np.sort(sk.ravel()), _sorted_rows(ref[j[:1]])[0])


def test_ties_are_ordered_by_local_mean_so_leftover_values_sit_next_to_the_strokes():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0  # one bright pixel on black
    ref = torch.zeros(1, 1, 9, 9)
    ref[0, 0, 0, :2] = torch.tensor([0.9, 0.5])  # two bright values: one more than the image has
    out = match_histograms_exact(x, ref, *_gens())
    assert out[0, 0, 4, 4] == pytest.approx(0.9)
    y, xx = np.argwhere(out[0, 0].numpy() == np.float32(0.5))[0]
    assert max(abs(y - 4), abs(xx - 4)) == 1  # the leftover goes to a neighbour, not anywhere
    loose = match_histograms_exact(x, ref, *_gens(), sigma=0)  # no local mean: ties at random
    np.testing.assert_array_equal(_sorted_rows(loose), _sorted_rows(ref))


def test_exact_matching_is_prefix_stable_and_checks_shapes():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.random((12, 1, 5, 5)).round(1).astype(np.float32))
    ref = torch.from_numpy(rng.random((4, 1, 5, 5)).astype(np.float32))
    full = match_histograms_exact(x, ref, *_gens(7))
    part = match_histograms_exact(x[:5], ref, *_gens(7))
    assert torch.equal(full[:5], part)
    with pytest.raises(ParameterError, match=r"shape \(1, 5, 5\) cannot be matched .* \(1, 6, 6\)"):
        match_histograms_exact(x, torch.zeros(2, 1, 6, 6), *_gens())


# --------------------------------------------------------------------------------- standardisation


def test_standardize_images_is_tensorflows_per_image_standardization():
    rng = np.random.default_rng(4)
    x = rng.random((3, 1, 4, 5)).astype(np.float32)
    x[2] = 0.25  # a flat image: the std floor 1/sqrt(n) keeps it finite
    got = standardize_images(torch.from_numpy(x)).numpy()
    for i in range(3):
        n = x[i].size
        want = (x[i] - x[i].mean()) / max(x[i].std(), 1 / np.sqrt(n))
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)
    assert np.all(got[2] == 0)


# ------------------------------------------------------------------------------- the benchmarks


def test_the_default_is_match_and_only_the_ood_images_change(raw, matched):
    assert DEFAULT_PREPROCESSING["mnist5k"] == "match" and load_benchmark(n_ood=1).preprocessing == "match"
    assert PREPROCESSINGS == ("raw", "match", "standardize")
    assert torch.equal(matched.x_train, raw.x_train) and torch.equal(matched.x_test, raw.x_test)
    assert torch.equal(matched.y_train, raw.y_train) and torch.equal(matched.y_test, raw.y_test)
    digits = {r.tobytes() for r in _sorted_rows(raw.x_train)}
    for name, x in matched.ood.items():
        assert not torch.equal(x, raw.ood[name]), name
        assert all(r.tobytes() in digits for r in _sorted_rows(x)), name  # a training digit's very values
        assert abs(float(x.mean()) - float(raw.x_train.mean())) < 0.01, name


def test_match_is_deterministic_and_prefix_stable(matched):
    again = load_benchmark(n_ood=37, preprocessing="match")
    for name in matched.ood:
        assert torch.equal(again.ood[name], matched.ood[name][:37]), name
    other = load_benchmark(n_ood=37, seed=1, preprocessing="match")
    assert not torch.equal(other.ood["faces"], again.ood["faces"])


def test_standardize_changes_every_set(raw):
    b = load_benchmark(n_ood=200, preprocessing="standardize")
    sets = {"train": b.x_train, "test": b.x_test, **b.ood}
    for name, before in {"train": raw.x_train, "test": raw.x_test, **raw.ood}.items():
        flat = sets[name].reshape(len(before), -1)
        assert flat.mean(1).abs().max() < 1e-5, name
        above_floor = before.reshape(len(before), -1).std(1, unbiased=False) > 1 / 28  # 1/sqrt(784)
        assert int(above_floor.sum()) > 0.9 * len(before), name
        torch.testing.assert_close(flat.std(1, unbiased=False)[above_floor], torch.ones(int(above_floor.sum())),
                                   atol=1e-4, rtol=0)


def test_kinds_sanity_and_paper_like_sets(matched):
    assert matched.kinds == {k: OOD_KINDS[k] for k in matched.ood}
    assert matched.sanity == ["noise"] and OOD_KINDS["noise"] == SANITY_KIND
    assert matched.paper_like == ["letters", "faces", "photos", "textures"]
    assert "preprocessing='match'" in repr(matched)


# ---------------------------------------------------------------------------- a user's OOD sets


def test_with_ood_prepares_a_tensor_like_the_benchmarks_own_sets(matched, raw):
    rng = np.random.default_rng(5)
    mine = torch.from_numpy(rng.random((30, 28, 28)).astype(np.float32))
    before = mine.clone()
    b = matched.with_ood("mine", mine)
    assert torch.equal(mine, before) and "mine" not in matched.ood  # nothing modified
    assert list(b.ood) == [*matched.ood, "mine"] and b.kinds["mine"] == "user" and b.paper_like[-1] == "mine"
    digits = {r.tobytes() for r in _sorted_rows(raw.x_train)}
    assert b.ood["mine"].shape == (30, 1, 28, 28)
    assert all(r.tobytes() in digits for r in _sorted_rows(b.ood["mine"]))
    assert torch.equal(matched.prepare_ood(mine, "mine"), b.ood["mine"])  # seeded by the set's name
    assert torch.equal(raw.with_ood("mine", mine).ood["mine"], mine.unsqueeze(1))  # raw: as given
    sanity = matched.with_ood("static", mine, kind=SANITY_KIND)
    assert sanity.sanity == ["noise", "static"]
    u8 = (mine.numpy() * 255).astype(np.uint8)
    torch.testing.assert_close(raw.prepare_ood(u8, "u8"), torch.from_numpy(u8 / np.float32(255)).unsqueeze(1))


def _save(path, array, mode):
    Image.fromarray(array, mode=mode).save(path)


def test_a_folder_of_images_is_read_in_gray_centre_cropped_and_resized(tmp_path, raw):
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    wide = np.zeros((28, 56), np.uint8)
    wide[:, 14:42] = 255  # the centre square is white, the margins black
    _save(folder / "a_wide.png", wide, "L")
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 1] = 255  # pure green: ITU-R 709 luma 0.7154
    _save(folder / "sub" / "b_green.png", rgb, "RGB")
    (folder / ".hidden.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("skipped")
    x = read_image_folder(folder)
    assert x.shape == (2, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], 1.0, atol=1e-6)  # a_wide.png first (sorted), its white centre
    np.testing.assert_allclose(x[1], 0.7154, atol=2e-3)
    b = raw.with_ood("folder", folder)
    torch.testing.assert_close(b.ood["folder"], torch.from_numpy(x).unsqueeze(1))
    assert "folder" in b.sources and "user set" in b.sources["folder"]


@pytest.mark.parametrize("images, message", [
    (torch.zeros(3, 1, 32, 32), r"images of shape \(3, 1, 32, 32\) are not allowed: expected \(N, 1, 28, 28\)"),
    (torch.zeros(0, 28, 28), r"images of shape \(0, 1, 28, 28\) are not allowed"),
    (torch.full((2, 28, 28), 2.0), r"values in \[2, 2\] are not allowed: expected floats in \[0, 1\]"),
    (torch.full((2, 28, 28), float("nan")), r"expected floats in \[0, 1\]"),
    ("/no/such/folder", r"images='/no/such/folder' is not allowed: expected a folder holding image files"),
])
def test_bad_user_sets_fail_with_one_clear_message(raw, images, message):
    with pytest.raises(ParameterError, match=message):
        raw.with_ood("x", images)


@pytest.mark.parametrize("name", ["", "letters", "Average", "test", 3])
def test_a_user_set_needs_a_new_name(raw, name):
    with pytest.raises(ParameterError, match="name=.* is not allowed: expected a new, non-empty set name"):
        raw.with_ood(name, torch.zeros(2, 28, 28))


def test_paper_scale_user_sets_keep_the_benchmarks_transform(tmp_path):
    b = Benchmark("cifar10", torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64),
                  torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.int64), {}, 10)
    (tmp_path / "f").mkdir()
    _save(tmp_path / "f" / "a.png", np.zeros((50, 40, 3), np.uint8), "RGB")
    files = b.prepare_ood(tmp_path / "f", "mine")
    assert isinstance(files, ImageFiles) and files[0].shape == (3, 32, 32) and "cifar10:mine" in files.cache_key
    assert b.prepare_ood(torch.ones(4, 3, 32, 32), "t").shape == (4, 3, 32, 32)
    with pytest.raises(ParameterError, match=r"expected \(N, 3, H, W\)"):
        b.prepare_ood(torch.ones(4, 1, 32, 32), "t")


def test_network_check_and_choice_by_hand():
    """A candidate passes when its units are in the paper's range, its energy passes the baseline check and
    nothing is worse beyond the interval; the choice is the passing candidate with the fewest units."""
    import numpy as np
    import pandas as pd

    from ashlib.book import fidelity

    rng = np.random.default_rng(0)
    columns = ["ID acc", *fidelity.NETWORK_BASELINES]
    reference = pd.DataFrame(90 + rng.normal(0, 0.5, size=(201, 4)), columns=columns)
    better = reference + 2.0  # every quantity 2 points above, on the same resamples
    worse = reference.assign(**{"ReAct": reference["ReAct"] - 3.0})
    ok = {"passes": True}
    assert fidelity.network_check(better, reference, 512, ok)["passes"]
    check = fidelity.network_check(worse, reference, 1024, ok)
    assert not check["passes"] and check["ReAct difference"] == pytest.approx(-3) and check["ReAct hi"] < 0
    assert not fidelity.network_check(better, reference, 256, ok)["passes"]  # below the paper's 342 units
    assert not fidelity.network_check(better, reference, 512, {"passes": False})["passes"]
    with pytest.raises(ParameterError, match="without the columns"):
        fidelity.network_check(better.drop(columns="ReAct"), reference, 512, ok)
    checks = {2048: {"passes": True}, 512: {"passes": False}, 1024: {"passes": True}}
    assert fidelity.choose_network(checks) == 1024
    assert fidelity.choose_network({512: {"passes": False}}) == 0
