"""Fitting: Normal images only, every granularity and algorithm, tiling, ROI, the memory bank cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from astrocyte_lab import Workspace
from astrocyte_lab.errors import AstrocyteError
from astrocyte_lab.modules.anomaly.config import AnomalyConfig
from astrocyte_lab.modules.anomaly.trainer import load_network, train, train_job


def test_patchcore_fit_record_and_bank_cap(fitted: tuple[Workspace, str]) -> None:
    ws, name = fitted
    record = ws.model_store.record(name)
    assert record["module"] == "anomaly" and record["categories"] == ["Normal", "Anomaly"]
    assert record["images"] == {"train": 18, "validation": 12, "left_out": 0}
    section = record["anomaly"]
    assert section["algorithm"] == "patchcore" and section["score"] == "map_max" and section["heatmap"]
    assert record["metrics"]["val_auroc"] >= 0.9, record["metrics"]  # a bright/dark square is easy even untrained
    assert section["threshold"] == pytest.approx(record["metrics"]["val_threshold"])
    net, _, spec = load_network(ws, name)
    assert net.model.memory_bank.shape[0] == section["memory_bank"] == max(1, round(0.01 * section["patches"]))
    assert (spec.width, spec.height, spec.channels) == (64, 64, 1)


def test_layout_term_is_fitted_saved_and_part_of_the_map(fitted: tuple[Workspace, str]) -> None:
    ws, name = fitted
    shape = ws.model_store.record(name)["anomaly"]["layout"]
    # 64 px inputs give an 8 x 8 patch grid, one cell per patch; fewer directions than the 18 images
    assert shape["grid"] == [8, 8] and shape["kernel"] == [1, 1] and shape["channels"] == 152
    assert 1 <= shape["components"] <= 17 and shape["weight"] > 0
    net, _, _ = load_network(ws, name)
    assert net.layout is not None and float(net.layout.weight) == pytest.approx(shape["weight"])
    image = torch.randn(2, 1, 64, 64)
    with_layout = net.patch_map(net.embed(image))
    layout_term = net.layout(net.embed(image))
    net.set_layout(None)
    assert torch.allclose(with_layout, net.patch_map(net.embed(image)) + layout_term, atol=1e-5)
    assert layout_term.abs().sum() > 0


def test_defect_segmenter_is_fitted_saved_and_adds_to_the_heatmap_only(fitted: tuple[Workspace, str]) -> None:
    ws, name = fitted
    shape = ws.model_store.record(name)["anomaly"]["segmenter"]
    # 18 Normal images of an 8 x 8 grid: a fifth (3) calibrate the weight; the budget would allow far more than
    # the 4 synthetic variants made from each of the other 15
    assert shape["channels"] == 152 and shape["held_out"] == 3
    assert shape["synthetic"] == 4 * 15 and shape["normal"] == 15
    # the calibration images are unseen by the bank too: only the other 15 images' 8 x 8 patches count
    assert ws.model_store.record(name)["anomaly"]["patches"] == 15 * 64
    net, _, _ = load_network(ws, name)
    assert net.segmenter is not None and shape["weight"] > 0
    assert float(net.segmenter.weight) == pytest.approx(shape["weight"])
    assert (shape["pool"], shape["flips"]) == (net.segmenter.pool, net.segmenter.flips) == (2, 4)
    assert list(net.output_roles()) == ["score", "anomaly_map", "score_map"]
    image = torch.randn(2, 1, 64, 64)
    score, heatmap, score_map = net(image)
    torch.testing.assert_close(score, score_map.flatten(1).amax(1))
    term = torch.nn.functional.interpolate(net.segmenter(net.embed(image)), size=(64, 64), mode="bilinear",
                                           align_corners=False)
    torch.testing.assert_close(heatmap, score_map + term)
    assert term.min() > 0
    net.set_segmenter(None)
    alone_score, alone_map = net(image)
    torch.testing.assert_close(alone_map, score_map)
    torch.testing.assert_close(alone_score, score)


@pytest.mark.parametrize("options", [{"layout_model": False, "defect_segmenter": False},
                                     {"tiling": True, "tile_size": (32, 32)}])
def test_layout_and_segmenter_are_left_out_when_disabled_or_tiling(tiles: tuple[Workspace, str],
                                                                   options: dict) -> None:
    ws, dataset_name = tiles
    train(ws, dataset_name, "plain", AnomalyConfig(seed=0, pretrained=False, **options))
    section = ws.model_store.record("plain")["anomaly"]
    assert section["layout"] is None and section["segmenter"] is None
    net = load_network(ws, "plain")[0]
    assert net.layout is None and net.segmenter is None and list(net.output_roles()) == ["score", "anomaly_map"]


def test_memory_bank_cap_and_anomalies_in_training_left_out(tiles: tuple[Workspace, str]) -> None:
    ws, dataset_name = tiles
    dataset = ws.dataset(dataset_name)
    dataset.assign_set(dataset.select(ground_truth="Anomaly")[:2], "train")
    dataset.save()
    train(ws, dataset_name, "capped", AnomalyConfig(seed=0, pretrained=False, coreset_ratio=0.5,
                                                    memory_bank_size=50))
    record = ws.model_store.record("capped")
    assert record["images"]["left_out"] == 2 and record["anomaly"]["memory_bank"] == 50
    assert load_network(ws, "capped")[0].model.memory_bank.shape == (50, 152)


@pytest.mark.parametrize("options", [{"algorithm": "padim"}, {"granularity": "pixel_low_res"},
                                     {"granularity": "image"}])
def test_other_granularities_and_algorithms(tiles: tuple[Workspace, str], options: dict) -> None:
    ws, dataset_name = tiles
    job = train_job(ws, dataset_name, "m", AnomalyConfig(seed=0, pretrained=False, **options))
    job.result()
    record = ws.model_store.record("m")
    assert record["metrics"]["val_auroc"] >= 0.8, (options, record["metrics"])
    if options.get("granularity") == "pixel_low_res":
        assert (record["input"]["width"], record["input"]["height"]) == (32, 32)
    if options.get("granularity") == "image":
        section = record["anomaly"]
        assert section["algorithm"] == "dfm" and section["score"] == "model"
        assert set(section["outlier_exposure"]) == {"fre@0.8", "fre@0.9", "fre@0.97", "fre@0.99"}
        assert section["heatmap"] == (section["score_type"] == "fre")


def test_tiling_and_roi(tiles: tuple[Workspace, str]) -> None:
    ws, dataset_name = tiles
    dataset = ws.dataset(dataset_name)
    ignored = np.zeros((64, 64), bool)
    ignored[:, :8] = True  # a strip the models must not use
    dataset.set_roi(ignored)
    dataset.save()
    train(ws, dataset_name, "tiled", AnomalyConfig(seed=0, pretrained=False, tiling=True, tile_size=(32, 32),
                                                   tile_overlap=0.25))
    record = ws.model_store.record("tiled")
    assert record["anomaly"]["tiling"] == {"tile": [32, 32], "overlap": 0.25}
    assert record["input"]["crop"] == [8, 0, 56, 64]
    assert (record["input"]["width"], record["input"]["height"]) == (32, 32)
    assert record["metrics"]["val_auroc"] >= 0.8, record["metrics"]


def test_refusal_without_normal_training_images(tiles: tuple[Workspace, str]) -> None:
    ws, dataset_name = tiles
    dataset = ws.dataset(dataset_name)
    dataset.assign_set(dataset.select(ground_truth="Normal"), "validation")
    dataset.save()
    with pytest.raises(AstrocyteError, match="no Normal image in the training set"):
        train(ws, dataset_name, "none", AnomalyConfig(pretrained=False))
    assert not ws.model_store.exists("none")


def test_defect_target_is_zero_exactly_where_the_input_is_masked() -> None:
    from astrocyte_lab.modules.anomaly.trainer import defect_target
    from astrocyte_lab.training.data import InputSpec

    ignored = np.zeros((30, 50), bool)
    ignored[:, :7] = True  # odd widths: nearest-neighbour rounding decides which input columns are masked
    spec = InputSpec(23, 17, 1, 8, (0.5,), (0.25,), (3, 2, 50, 30), ~ignored)
    image = np.full((40, 60), 200, np.uint8)
    masked_input = spec.to_tensor(image)[0] == 0
    target = defect_target(np.ones((40, 60), bool), spec)
    assert target.shape == (17, 23) and masked_input.any()
    np.testing.assert_array_equal(target == 0, masked_input)


def test_the_image_cache_keeps_images_within_its_byte_limit_and_reads_the_rest() -> None:
    from astrocyte_lab.modules.anomaly.trainer import ImageCache

    class Store:
        reads: list[int] = []

        def image(self, image_id: int) -> np.ndarray:
            self.reads.append(image_id)
            return np.full((10, 10), image_id, np.uint8)

    store = Store()
    cache = ImageCache(store, limit=250)  # room for two 100-byte images
    for image_id in range(4):
        cache.add(image_id, store.image(image_id))
    store.reads.clear()
    assert sorted(cache.images) == [0, 1] and cache.used == 200
    assert [int(cache.image(i)[0, 0]) for i in range(4)] == [0, 1, 2, 3]
    assert store.reads == [2, 3]  # only the images it could not keep are read again
