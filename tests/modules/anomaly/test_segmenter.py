"""The defect segmenter: synthetic defects with exact masks, and a network that learns to find a region
that differs from the rest of its own image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from astrocyte_lab.modules.anomaly import outliers
from astrocyte_lab.modules.anomaly.segmenter import LEAST_PROBABILITY, DefectSegmenter, calibrated_weight, fit_segmenter


@pytest.mark.parametrize("shape", [(64, 96), (64, 96, 1), (64, 96, 3)])
def test_synthetic_defect_changes_its_region_and_keeps_the_rest(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    changed_outside, seen = [], 0
    for _ in range(40):
        image = rng.uniform(0.2, 0.8, shape).astype(np.float32)
        other = rng.uniform(0.2, 0.8, shape).astype(np.float32)
        out, region = outliers.synthetic_defect(image, other, rng)
        assert out.shape == image.shape and out.dtype == np.float32 and region.shape == shape[:2]
        assert region.any() and 0.0 <= out.min() and out.max() <= 1.0
        difference = np.abs(out - image).reshape(*shape[:2], -1).max(-1)
        far = ~_dilated(region, 8)
        changed_outside.append(float(difference[far].max(initial=0.0)))
        seen += int(difference[region].mean() > 1e-3)
    assert max(changed_outside) < 1e-3  # a soft edge reaches a few pixels out, never far
    assert seen >= 36  # almost every defect changes its pixels (a blur of flat noise may barely show)


def _dilated(region: np.ndarray, pixels: int) -> np.ndarray:
    import cv2

    return cv2.dilate(region.astype(np.uint8), np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)) > 0


@pytest.mark.parametrize("kind", outliers.REGIONS)
def test_regions_of_every_kind_cover_part_of_the_image(kind: str) -> None:
    rng = np.random.default_rng(1)
    areas = [outliers.random_region(rng, 120, 160, kind).mean() for _ in range(30)]
    assert 0.0 < np.median(areas) < 0.6 and max(areas) < 0.95
    with pytest.raises(ValueError, match="unknown region"):
        outliers.random_region(rng, 10, 10, "star")


def finish_images(count: int, rng: np.random.Generator, defect: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(count, 4, 16, 16)`` embeddings of parts with one finish each (any of four, noisy), and, with
    ``defect``, a random band of another finish; and the ``(count, 1, 16, 16)`` band masks."""
    finishes = torch.eye(4)
    embeddings = torch.empty(count, 4, 16, 16)
    masks = torch.zeros(count, 1, 16, 16)
    for i in range(count):
        base, other = rng.choice(4, 2, replace=False)
        embeddings[i] = finishes[base][:, None, None]
        if defect:
            start = int(rng.integers(0, 12))
            embeddings[i, :, start:start + 4] = finishes[other][:, None]
            masks[i, 0, start:start + 4] = 1.0
    noise = torch.from_numpy(rng.normal(0, 0.1, embeddings.shape).astype(np.float32))
    return embeddings + noise, masks


def test_the_segmenter_finds_a_band_of_another_finish() -> None:
    """Each band's finish is a Normal finish elsewhere, so only its contrast with its own image tells."""
    rng = np.random.default_rng(0)
    defects, targets = finish_images(160, rng, True)
    normals, _ = finish_images(80, rng, False)
    steps: list[tuple[int, int]] = []
    model = fit_segmenter(defects.half(), targets, normals.half(), width=16, epochs=6, seed=0, weight=2.5,
                          step=lambda done, total: steps.append((done, total)))
    assert steps[-1][0] == steps[-1][1] == len(steps)
    test, masks = finish_images(20, np.random.default_rng(5), True)
    with torch.no_grad():
        values = model(test)
    assert values.shape == masks.shape and float(values.max()) <= 2.5  # a probability times the weight
    assert roc_auc_score(masks.flatten().numpy() > 0.5, values.flatten().numpy()) > 0.9


def test_segmenter_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="multiple of"):
        DefectSegmenter(4, width=12)
    with pytest.raises(ValueError, match="do not match"):
        fit_segmenter(torch.zeros(2, 4, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 5, 8, 8))


def test_weight_matches_the_top_of_normal_of_both_maps() -> None:
    segmenter = DefectSegmenter(4, width=8)
    normals = torch.randn(6, 4, 8, 8)
    with torch.no_grad():
        probabilities = segmenter(normals)
    patch_maps = torch.rand(6, 1, 8, 8) * 30.0
    weight = calibrated_weight(segmenter, patch_maps, normals)
    assert float(segmenter.weight) == 1.0  # the segmenter itself is left as it was
    patch_q = torch.quantile(patch_maps.flatten(), 0.99).item()
    assert weight * torch.quantile(probabilities.flatten(), 0.99).item() == pytest.approx(patch_q, rel=1e-5)
    with torch.no_grad():  # a segmenter silent on Normal images is not blown up without bound
        segmenter.body[-1].bias.fill_(-50.0)
    assert calibrated_weight(segmenter, patch_maps, normals) == pytest.approx(patch_q / LEAST_PROBABILITY)


@pytest.mark.parametrize("grid", [(8, 8), (7, 9), (1, 1)])
def test_a_pooled_segmenter_answers_on_the_whole_patch_grid(grid: tuple[int, int]) -> None:
    """Cells of 2 x 2 patches, odd edges included; the answer is upsampled back to every patch."""
    torch.manual_seed(0)
    pooled, plain = DefectSegmenter(4, width=8, pool=2, flips=1), DefectSegmenter(4, width=8, pool=1, flips=1)
    plain.load_state_dict(pooled.state_dict())  # same parameters: only the grid they run on differs
    embedding = torch.randn(2, 4, *grid)
    with torch.no_grad():
        out, reference = pooled(embedding), plain(embedding)
    assert out.shape == reference.shape == (2, 1, *grid)
    if grid == (8, 8):  # on 2 x 2 cells, the cells' mean embedding is what the body reads
        cells = torch.nn.functional.avg_pool2d(embedding, 2)
        with torch.no_grad():
            assert torch.allclose(plain(cells)[..., 1, 2], out[..., 2:4, 4:6].mean((-2, -1)), atol=0.05)
    with pytest.raises(ValueError, match="pool"):
        DefectSegmenter(4, width=8, pool=0)


@pytest.mark.parametrize("grid", [(8, 8), (7, 9)])
def test_the_flip_average_is_the_mean_of_the_mirrored_passes_and_mirror_symmetric(grid: tuple[int, int]) -> None:
    torch.manual_seed(0)
    segmenter = DefectSegmenter(4, width=8, pool=2, flips=4).eval()
    segmenter.weight.fill_(3.0)
    embedding = torch.randn(2, 4, *grid)
    with torch.no_grad():
        views = [torch.sigmoid(segmenter.logits(embedding.flip(dims))).flip(dims) if dims else
                 torch.sigmoid(segmenter.logits(embedding)) for dims in ((), (-1,), (-2,), (-2, -1))]
        out = segmenter(embedding)
        assert torch.allclose(out, 3.0 * torch.stack(views).mean(0), atol=1e-6)
        assert not torch.allclose(views[0], views[1], atol=1e-3)  # the views differ: the average is not a no-op
        for dims in ((-1,), (-2,)):  # mirroring the input mirrors the answer
            assert torch.allclose(segmenter(embedding.flip(dims)), out.flip(dims), atol=1e-6)
        two = DefectSegmenter(4, width=8, pool=2, flips=2).eval()
        two.load_state_dict(segmenter.state_dict())
        assert torch.allclose(two(embedding), 3.0 * torch.stack(views[:2]).mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="flips"):
        DefectSegmenter(4, width=8, flips=3)


def test_balanced_kinds_cover_every_combination_evenly() -> None:
    kinds = outliers.balanced_kinds(30)
    combinations = len(outliers.REGIONS) * len(outliers.ALTERATIONS)
    counts = {pair: kinds.count(pair) for pair in set(kinds)}
    assert len(kinds) == 30 and len(counts) == combinations and set(counts.values()) == {2, 3}


def test_the_other_image_is_read_only_for_a_content_swap_and_once() -> None:
    rng = np.random.default_rng(4)
    image = rng.uniform(0.2, 0.8, (40, 50)).astype(np.float32)
    other = rng.uniform(0.2, 0.8, (20, 25)).astype(np.float32)  # another size: resized to the image's
    reads: list[int] = []

    def read() -> np.ndarray:
        reads.append(1)
        return other

    for seed in range(20):  # with "gain" first, a swap can come only as the second alteration
        lazy = outliers.synthetic_defect(image, read, np.random.default_rng(seed), alteration="gain")
        eager = outliers.synthetic_defect(image, other, np.random.default_rng(seed), alteration="gain")
        assert np.array_equal(lazy[0], eager[0]) and np.array_equal(lazy[1], eager[1])
    assert 0 < len(reads) < 20  # read for some defects only
    reads.clear()
    outliers.synthetic_defect(image, read, np.random.default_rng(0), alteration="swap")
    assert len(reads) == 1


def test_a_pooled_segmenter_exports_to_onnx_with_odd_grids() -> None:
    """The package runs the segmenter in onnxruntime: the replicate padding, upsampling and flip average must
    agree, for any batch size."""
    import onnxruntime as ort

    from astrocyte_lab.training.onnx_export import export_onnx

    torch.manual_seed(1)
    segmenter = DefectSegmenter(4, width=8, pool=2, flips=4).eval()
    embedding = torch.randn(2, 4, 7, 9)
    graph = export_onnx(segmenter, embedding, input_name="x", output_names=["y"])
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    for batch in (torch.randn(3, 4, 7, 9), torch.randn(1, 4, 7, 9)):  # the mirrored views split by the batch size
        with torch.no_grad():
            expected = segmenter(batch).numpy()
        assert np.allclose(session.run(None, {"x": batch.numpy()})[0], expected, atol=1e-5)
