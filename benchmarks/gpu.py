"""GPU benchmark (issue 21): every module trains, tests and exports on CUDA, and batch-1 latency against the
vendor's RTX 4090 column, resize from the camera-sized image included.

Without CUDA it prints why and exits 0 (``--device cpu --quick`` runs the same code at tiny sizes instead,
to test the script itself). On a GPU, in this order, each step under its own time limit so that one failure
or overrun does not stop the rest, and the JSON (``--out``) rewritten after every step:

1. ``samples``: the ``metal``, ``components``, ``scratches`` and ``hardware`` sample datasets.
2. per module, through the public API (``train_job``, ``evaluate_*``, ``export_package``):
   anomaly (PatchCore, metal) fitted once; classification (components), segmentation (scratches) and
   detection (hardware, YOLOv8-n) trained for a few epochs with ``mixed_precision`` on and off
   (``cudnn_benchmark`` on): seconds per epoch (median of the epochs after the first, validation included)
   and training images per second; then tested on CUDA and exported.
3. per module, the network at the vendor's size (classification 768x512x1; detection 1228x920x3 -> 512x512;
   segmentation 2048x2048 -> 1024x1024; anomaly 2592x2048 -> 1024x1024, PatchCore with an 8192-entry
   memory bank, layout term and defect segmenter), batch 1, median of ``--runs`` calls after warm-up, each
   call synchronised: fp32, channels_last, autocast fp16, channels_last + fp16, and CUDA graphs of fp32
   and of the fastest eager variant; then the whole pipeline: the uint8 camera image copied to the GPU,
   resized (bilinear, as the runtime's preprocessing) and normalised there, the network, the post-processing
   on the GPU (softmax / arg-max / heatmap / box decoding + NMS) and the result copied to the host, eager and
   as a CUDA graph (detection: NMS eager after the graph); and the existing CPU-side paths for comparison
   (``Detector.detect``, runtime ``preprocess``). Throughput at batch 8 and 32 (images/s).
4. a table with the vendor's RTX 4090 figures and the ratios.

Networks for step 3 get random weights (the timing does not depend on them), except detection, which uses
the hardware model of step 2 when there is one, so that NMS sees a realistic number of candidates.

    python3 benchmarks/gpu.py --out gpu.json            # on a CUDA machine (about 4-5 minutes on an H200)
    .venv/bin/python benchmarks/gpu.py --device cpu --quick --out /tmp/gpu-quick.json   # the code paths
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import signal
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

MODULES = ("anomaly", "classification", "segmentation", "detection")
SAMPLE = {"anomaly": "metal", "classification": "components", "segmentation": "scratches", "detection": "hardware"}
VENDOR_MS = {"anomaly": 9.0, "classification": 1.2, "detection": 3.0, "segmentation": 8.9}  # RTX 4090, batch 1
CAMERA = {"classification": (768, 512, 1), "detection": (1228, 920, 3), "segmentation": (2048, 2048, 1),
          "anomaly": (2592, 2048, 1)}  # width, height, channels of the camera image
INPUT = {"classification": (768, 512), "detection": (512, 512), "segmentation": (1024, 1024),
         "anomaly": (1024, 1024)}  # network input (width, height)
BANK = 8192  # PatchCore memory bank at the default cap
CLASSES = {"classification": 4, "segmentation": 3, "detection": 5}


class StepTimeout(Exception):
    """A step ran past its own limit (raised by SIGALRM in the main thread)."""


class Report:
    """The JSON written after every step, plus the lines printed."""

    def __init__(self, out: Path | None, args: argparse.Namespace) -> None:
        self.out, self.started = out, time.perf_counter()
        self.data: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": vars(args),
                                     "steps": {}, "training": {}, "latency": {}, "pipeline_check": {}}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def save(self) -> None:
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps(self.data, indent=1, default=str))


def _alarm(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise StepTimeout("step time limit reached")


def step(report: Report, name: str, limit_s: float, budget_s: float, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` under ``limit_s`` (and what is left of ``budget_s``); record ok / error / timeout / skipped."""
    left = budget_s - report.elapsed()
    if left < 5:
        report.data["steps"][name] = {"status": "skipped", "reason": "overall time budget spent"}
        print(f"[{report.elapsed():6.1f}s] {name}: skipped (time budget)", flush=True)
        report.save()
        return None
    limit = max(1, int(min(limit_s, left)))
    started = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(limit)
    entry: dict[str, Any] = {}
    value = None
    try:
        value = fn()
        entry["status"] = "ok"
    except StepTimeout:
        entry.update(status="timeout", limit_s=limit)
    except Exception as error:  # noqa: BLE001 - one failed step must not stop the others
        entry.update(status="error", error=f"{type(error).__name__}: {error}",
                     traceback=traceback.format_exc().splitlines()[-12:])
    finally:
        signal.alarm(0)
    entry["seconds"] = round(time.perf_counter() - started, 2)
    report.data["steps"][name] = entry
    report.save()
    shown = " ".join(entry.get("error", "").split())[:300]
    print(f"[{report.elapsed():6.1f}s] {name}: {entry['status']} in {entry['seconds']} s {shown}", flush=True)
    return value


# ------------------------------------------------------------------------------------------ timing helpers


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], Any], device, runs: int, warmup: int) -> dict[str, float]:
    """Median / p90 milliseconds of ``runs`` synchronised calls after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    synchronize(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return {"median_ms": round(statistics.median(times), 3), "p90_ms": round(float(np.percentile(times, 90)), 3)}


def graphed(fn: Callable[[], Any], device, warmup: int = 3) -> tuple[Callable[[], Any], Any]:
    """A CUDA graph of ``fn`` (static inputs it closes over): ``(replay, outputs)``."""
    import torch

    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = fn()
    return graph.replay, outputs


def first(out):
    return out[0] if isinstance(out, tuple | list) else out


# ------------------------------------------------------------------------------------------ step 1 + 2: training


def make_samples(root: Path) -> dict[str, Path]:
    from astrocyte_lab import samples

    return {k: Path(v) for k, v in samples.generate(root / "samples", [SAMPLE[m] for m in MODULES]).items()}


def create_dataset(ws, module: str, source: Path):
    from astrocyte_lab.data.sources import DatabaseSet, Location, NamedSet, segmentation_set

    name = module
    if name in ws.dataset_names():
        return ws.dataset(name)
    if module == "anomaly":
        dataset = ws.create_dataset(name, "anomaly", [
            NamedSet("good", [Location(source / "good", category="Normal")]),
            NamedSet("bad", [Location(source / "bad", category="Anomaly")], masks=Location(source / "masks"))],
            seed=0)
        dataset.assign_set(dataset.select(ground_truth="Anomaly"), "validation")
        dataset.save()
    elif module == "classification":
        dataset = ws.create_dataset(name, "classification", [NamedSet("components", [Location(
            source, use_folder_name=True)])], seed=0)
    elif module == "segmentation":
        dataset = ws.create_dataset(name, "segmentation", [segmentation_set("surface", source / "images",
                                                                            source / "masks")], seed=0)
        for value, label in (("0", "background"), ("1", "scratch"), ("2", "spot")):
            dataset.rename_category(value, label)
        dataset.save()
    else:
        from astrocyte_lab.formats import TextDatabase, TextFormat

        database = TextDatabase(TextFormat(path=source / "labels", image_folder=source / "images",
                                           columns=["class", "x1", "y1", "x2", "y2"], per_image=True,
                                           separator="tab"))
        dataset = ws.create_dataset(name, "detection", [DatabaseSet("labels", database)], seed=0)
    return dataset


def module_config(module: str, device: str, amp: bool, quick: bool, epochs: int):
    """The quick-start settings of each module, shortened to ``epochs``; ``quick`` shrinks the inputs too."""
    common = {"device": device, "mixed_precision": amp, "cudnn_benchmark": True, "seed": 0}
    if module == "anomaly":
        from astrocyte_lab.modules.anomaly.config import AnomalyConfig

        extra = {"region_size": (64, 64), "segmenter_epochs": 1, "segmenter_patches": 10_000} if quick else {}
        return AnomalyConfig(**common, **extra)
    if module == "classification":
        from astrocyte_lab.modules.classification.config import ClassificationConfig

        extra = {"region_size": (64, 64)} if quick else {}
        return ClassificationConfig(**common, **extra, epochs=epochs, batch_size=16, learning_rate=2e-3)
    if module == "segmentation":
        from astrocyte_lab.modules.segmentation.config import SegmentationConfig

        extra = {"region_size": (64, 64)} if quick else {}
        return SegmentationConfig(**common, **extra, epochs=epochs, batch_size=4, learning_rate=2e-3)
    from astrocyte_lab.modules.detection.config import DetectionConfig

    return DetectionConfig(**common, architecture="nano", epochs=epochs, batch_size=4, optimizer="adam",
                           learning_rate=0.002, pretrained=False, region_size=(224, 224) if quick else None)


def trainer_of(module: str):
    import importlib

    return importlib.import_module(f"astrocyte_lab.modules.{module}.trainer")


def train_module(ws, module: str, name: str, config, limit_s: float) -> dict:
    """Train through ``train_job``; seconds per epoch from the epoch events' arrival times."""
    job = trainer_of(module).train_job(ws, module, name, config)
    stamps: list[float] = []
    job.subscribe(lambda event: stamps.append(time.perf_counter()) if event.kind == "epoch" else None, replay=False)
    started = time.perf_counter()
    try:
        job.result(timeout=limit_s)
    except BaseException:
        job.cancel()
        job.wait(30)
        raise
    total = time.perf_counter() - started
    record = ws.model_store.record(name)
    images = int(record["images"]["train"])
    steps = np.diff([started, *stamps]).tolist()
    later = steps[1:] or steps
    epoch_s = statistics.median(later) if later else total
    result = {"device": record.get("device", config.device), "mixed_precision": config.mixed_precision,
              "train_images": images, "epochs": len(stamps), "total_s": round(total, 2),
              "first_epoch_s": round(steps[0], 3) if steps else None, "epoch_s": round(epoch_s, 3),
              "images_per_s": round(images / epoch_s, 1) if epoch_s > 0 else None,
              "metrics": {k: v for k, v in record.get("metrics", {}).items() if isinstance(v, int | float)}}
    if module == "anomaly":
        result.update(epochs=1, epoch_s=round(total, 3), images_per_s=round(images / total, 1),
                      duration_s=record.get("duration_s"),
                      memory_bank=record["anomaly"].get("memory_bank"))
    return result


def test_module(ws, module: str, name: str, device: str) -> dict:
    started = time.perf_counter()
    if module == "anomaly":
        from astrocyte_lab.evaluation.anomaly import evaluate_anomaly

        summary = evaluate_anomaly(ws, name, module, "validation", device=device).summary()
    elif module == "classification":
        from astrocyte_lab.evaluation.classification import evaluate_classifier

        summary = evaluate_classifier(ws, name, module, "validation", device=device).summary()
    elif module == "segmentation":
        from astrocyte_lab.evaluation.segmentation import evaluate_segmenter

        report = evaluate_segmenter(ws, name, module, "validation", device=device, keep_masks=False)
        summary = {"mean_iou": report.mean_iou}
    else:
        from astrocyte_lab.evaluation.detection import evaluate_detector

        summary = evaluate_detector(ws, name, module, "validation", device=device).summary()
    plain = {k: v for k, v in summary.items() if isinstance(v, int | float | str) or v is None}
    return {"seconds": round(time.perf_counter() - started, 2), **plain}


def export_module(ws, module: str, name: str, folder: Path) -> dict:
    import importlib

    started = time.perf_counter()
    export = importlib.import_module(f"astrocyte_lab.modules.{module}.export").export_package
    path = Path(export(ws, name, folder / f"{name}.astromodel"))
    return {"seconds": round(time.perf_counter() - started, 2), "bytes": path.stat().st_size}


# ------------------------------------------------------------------------------------------ step 3: latency


class Case:
    """One module's network at the vendor's size, its GPU pipeline and its CPU-side comparison rows."""

    def __init__(self, module: str, net, channels: int, mean, std, device, scale: int) -> None:
        self.module, self.net, self.channels, self.device = module, net, channels, device
        width, height, camera_channels = CAMERA[module]
        self.camera = (max(8, width // scale), max(8, height // scale), camera_channels)
        in_w, in_h = INPUT[module]
        self.input = (max(32, in_w // scale // 32 * 32), max(32, in_h // scale // 32 * 32))
        self.mean = list(mean)[:channels]
        self.std = list(std)[:channels]
        self.post: Callable | None = None  # set per module: (net output, camera size) -> host-bound tensors
        self.detector = None  # detection: the runtime head over this network (CPU-side decode + NMS)

    def meta_input(self) -> dict:
        width, height = self.input
        return {"width": width, "height": height, "channels": self.channels, "source_channels": self.channels,
                "bit_depth": 8, "resize": "bilinear", "mean": self.mean, "std": self.std}

    def image(self) -> np.ndarray:
        width, height, channels = self.camera
        rng = np.random.default_rng(0)
        shape = (height, width) if channels == 1 else (height, width, channels)
        return rng.integers(0, 256, shape, dtype=np.uint8)


def gpu_preprocess(frame, size: tuple[int, int], channels: int, mean, std):
    """``(H, W[, C])`` uint8 tensor on the GPU -> ``(1, C, h, w)`` float32 network input, as the runtime's
    ``preprocess`` does it (bilinear with half-pixel centres, no antialiasing, /255, then normalise).
    ``mean`` and ``std`` are ``(1, C, 1, 1)`` tensors already on the device (nothing is copied from the host,
    so the whole function can be captured in a CUDA graph)."""
    import torch.nn.functional as F

    x = frame[None, None] if frame.dim() == 2 else frame.permute(2, 0, 1)[None]
    x = x.float()
    if tuple(x.shape[-2:]) != (size[1], size[0]):
        x = F.interpolate(x, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    return ((x * (1.0 / 255.0) - mean) / std)[:, :channels]


def stats(case: Case):
    """The case's mean and std as ``(1, C, 1, 1)`` tensors on its device."""
    import torch

    return tuple(torch.tensor(v, device=case.device, dtype=torch.float32).view(1, -1, 1, 1)
                 for v in (case.mean, case.std))


def build_case(module: str, device, scale: int, ws=None, trained: str | None = None) -> Case:
    import torch

    if module == "classification":
        from astrocyte_lab.modules.classification.model import ClassifierNet
        from astrocyte_lab.modules.classification.registry import ARCHITECTURES, DEFAULT_ARCHITECTURE

        arch = ARCHITECTURES[DEFAULT_ARCHITECTURE]
        net = ClassifierNet(DEFAULT_ARCHITECTURE, CLASSES[module], 1, pretrained=False)
        case = Case(module, net, 1, arch.mean, arch.std, device, scale)
        case.post = lambda out, camera: torch.softmax(out.float(), 1).max(1)  # score and class
    elif module == "segmentation":
        from astrocyte_lab.modules.segmentation.model import SegmentationNet
        from astrocyte_lab.modules.segmentation.registry import (
            DEFAULT_SEGMENTATION_ARCHITECTURE,
            SEGMENTATION_ARCHITECTURES,
        )

        arch = SEGMENTATION_ARCHITECTURES[DEFAULT_SEGMENTATION_ARCHITECTURE]
        net = SegmentationNet(DEFAULT_SEGMENTATION_ARCHITECTURE, CLASSES[module], pretrained=False)
        case = Case(module, net, 1, arch.mean, arch.std, device, scale)
        case.post = _segmentation_post
    elif module == "anomaly":
        net, mean, std = anomaly_network(scale)
        case = Case(module, net, 1, mean, std, device, scale)
        case.post = _anomaly_post
    else:
        net = detection_network(ws, trained)
        case = Case(module, net, 3, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), device, scale)
        case.post = None  # decode + NMS: see detection_post
        case.detector = detection_head(case, net, device)
    case.net = net.to(device).eval()
    return case


def _segmentation_post(out, camera):
    """Class probabilities back at the camera size (as the package does), arg-max as a uint8 mask."""
    import torch
    import torch.nn.functional as F

    probabilities = torch.softmax(out.float(), 1)
    full = F.interpolate(probabilities, size=(camera[1], camera[0]), mode="bilinear", align_corners=False)
    return full.argmax(1).to(torch.uint8)


def _anomaly_post(out, camera):
    """Score and the heatmap back at the camera size (float32, as ``AnomalyPrediction.heatmap``)."""
    import torch.nn.functional as F

    score, heatmap = out[0], out[1]
    return score.float(), F.interpolate(heatmap.float(), size=(camera[1], camera[0]), mode="bilinear",
                                        align_corners=False)[:, 0]


def anomaly_network(scale: int):
    """PatchCore as fitted by default at 1024 x 1024 (lite0, bank of 8192, layout term, defect segmenter)."""
    import torch

    from astrocyte_lab.modules.anomaly.layout import LayoutModel, pool_kernel
    from astrocyte_lab.modules.anomaly.model import AnomalyNet
    from astrocyte_lab.modules.anomaly.registry import BACKBONES, DEFAULT_BACKBONE
    from astrocyte_lab.modules.anomaly.segmenter import DefectSegmenter

    torch.manual_seed(0)
    net = AnomalyNet(DEFAULT_BACKBONE, "patchcore", pretrained=False)
    side = max(32, INPUT["anomaly"][0] // scale // 32 * 32)
    embedding = net.embed(torch.randn(1, 1, side, side))
    channels, h, w = embedding.shape[1:]
    bank = max(16, BANK // scale ** 2)
    net.set_memory_bank(torch.randn(bank, channels))
    kernel = pool_kernel(h, w)
    grid = (h // kernel[0], w // kernel[1])
    net.set_layout(LayoutModel(channels, grid, 16, kernel))
    net.set_segmenter(DefectSegmenter(channels, 32, 2, 4))
    backbone = BACKBONES[DEFAULT_BACKBONE]
    return net.eval(), backbone.mean, backbone.std


def detection_network(ws, trained: str | None):
    """The hardware detector of step 2 when there is one (realistic NMS load), else a fresh YOLOv8-n."""
    from astrocyte_lab.modules.detection import yolo
    from astrocyte_lab.modules.detection.model import DetectionExport, load_network

    if ws is not None and trained and ws.model_store.exists(trained):
        net = load_network(ws, trained)[0]
    else:
        net = yolo.build_model("yolov8n.yaml", CLASSES["detection"], False)
        net.names = {i: f"class{i}" for i in range(CLASSES["detection"])}
    return DetectionExport(net.float().eval())


def detection_head(case: Case, net, device):
    """The runtime's ``Detector`` over this network (what ``Detector.detect`` costs: CPU decode and NMS)."""
    from astrocyte_lab.modules.detection.model import torch_runner
    from astrocyte_lab.runtime.detection import Detector

    names = getattr(net.net, "names", {}) or {}
    categories = [str(names.get(i, f"class{i}")) for i in range(len(names) or CLASSES["detection"])]
    metadata = {"module": "detection", "categories": categories, "input": case.meta_input(),
                "roi": {"crop": None, "mask": None}, "outputs": {"predictions": "predictions"},
                "detection": {"rotated": False, "confidence": 0.25, "overlap": 0.45, "max_detections": 100,
                              "class_agnostic": False, "tiling": None}}
    return Detector(metadata, None, torch_runner(net.net, device))


def detection_decode(out, conf: float = 0.25):
    """Dense part of decoding on the GPU (graph-capturable): boxes xyxy, best score and class per anchor."""
    p = out.float()[0]
    boxes = p[:4]
    scores, classes = p[4:].max(0)
    xyxy = torch_stack_xyxy(boxes)
    return xyxy, scores, classes


def torch_stack_xyxy(boxes):
    import torch

    cx, cy, w, h = boxes
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)


def detection_nms(xyxy, scores, classes, camera, size, conf: float = 0.25, overlap: float = 0.45, top: int = 100):
    """Threshold, per-class NMS (torchvision), the ``top`` best, scaled to the camera image; on the host."""
    import torch
    from torchvision.ops import batched_nms

    keep = scores >= conf
    boxes, scores_k, classes_k = xyxy[keep], scores[keep], classes[keep]
    kept = batched_nms(boxes, scores_k, classes_k, overlap)[:top]
    scale = torch.tensor([camera[0] / size[0], camera[1] / size[1]] * 2, device=boxes.device)
    return (boxes[kept] * scale).cpu(), scores_k[kept].cpu(), classes_k[kept].cpu()


def network_variants(case: Case, runs: int, warmup: int, cuda: bool) -> dict:
    """Batch-1 network latency: fp32, channels_last, fp16 autocast, both, and CUDA graphs."""
    import torch

    width, height = case.input
    x = torch.randn(1, case.channels, height, width, device=case.device)
    results: dict[str, Any] = {}
    reference = None

    def runner(channels_last: bool, fp16: bool, graph: bool = False):
        net = case.net.to(memory_format=torch.channels_last) if channels_last else \
            case.net.to(memory_format=torch.contiguous_format)
        inp = x.contiguous(memory_format=torch.channels_last) if channels_last else x

        @torch.no_grad()
        def call():  # autocast's weight cache must be off while a CUDA graph is captured
            with torch.autocast(case.device.type, dtype=torch.float16, enabled=fp16, cache_enabled=not graph):
                return net(inp)
        return call

    variants = {"fp32": (False, False), "channels_last": (True, False)}
    if cuda:
        variants.update({"fp16": (False, True), "channels_last_fp16": (True, True)})
    for label, (cl, fp16) in variants.items():
        try:
            call = runner(cl, fp16)
            out = first(call())
            if reference is None:
                reference = out.float()
            results[label] = timed(call, case.device, runs, warmup)
            scale = reference.abs().max().item() or 1.0
            results[label]["max_rel_diff_vs_fp32"] = float((first(call()).float() - reference).abs().max()) / scale
        except Exception as error:  # noqa: BLE001 - a variant that fails is reported, the others still run
            results[label] = {"error": f"{type(error).__name__}: {error}"}
    eager = {k: v["median_ms"] for k, v in results.items() if "median_ms" in v}
    if cuda and eager:
        best = min(eager, key=eager.get)
        for label in dict.fromkeys(["fp32", best]):
            try:
                replay, _ = graphed(runner(*variants[label], graph=True), case.device)
                results[f"cuda_graph_{label}"] = timed(replay, case.device, runs, warmup)
            except Exception as error:  # noqa: BLE001
                results[f"cuda_graph_{label}"] = {"error": f"{type(error).__name__}: {error}"}
        case.net.to(memory_format=torch.contiguous_format)
    return results


def pipeline_variants(case: Case, runs: int, warmup: int, cuda: bool, fp16: bool, channels_last: bool) -> dict:
    """Camera uint8 image on the host -> result on the host, resize and post-processing on the device."""
    import torch

    image = case.image()
    camera, size = case.camera, case.input
    net = case.net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    static = torch.from_numpy(image).to(case.device)
    mean, std = stats(case)
    results: dict[str, Any] = {"fp16": fp16, "channels_last": channels_last}

    def device_part(frame, graph: bool = False, small: bool = False):
        x = gpu_preprocess(frame, size, case.channels, mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(case.device.type, dtype=torch.float16, enabled=fp16,
                                             cache_enabled=not graph):
            out = net(x)
        if case.module == "detection":
            return detection_decode(out)
        if small:  # anomaly: score and the heatmap at the input size in fp16 (8x less to copy to the host)
            return out[0].float(), out[1].half()
        return case.post(out, camera)

    def finish(dense):
        if case.module == "detection":
            return detection_nms(*dense, camera, size)
        return tuple(t.cpu() for t in (dense if isinstance(dense, tuple) else (dense,)))

    @torch.no_grad()
    def eager():
        frame = torch.from_numpy(image).to(case.device, non_blocking=False)
        return finish(device_part(frame))

    results["eager"] = timed(eager, case.device, runs, warmup)
    if cuda:
        try:
            replay, dense = graphed(lambda: device_part(static, graph=True), case.device)

            def graph_call():
                static.copy_(torch.from_numpy(image))
                replay()
                return finish(dense)
            results["cuda_graph"] = timed(graph_call, case.device, runs, warmup)
        except Exception as error:  # noqa: BLE001
            results["cuda_graph"] = {"error": f"{type(error).__name__}: {error}"}
    if case.module == "anomaly":  # the heatmap at the input size in fp16: 8x less to copy
        @torch.no_grad()
        def small():
            return finish(device_part(torch.from_numpy(image).to(case.device), small=True))
        results["eager_heatmap_input_size_fp16"] = timed(small, case.device, runs, warmup)
        if cuda:
            try:
                replay_small, dense_small = graphed(lambda: device_part(static, graph=True, small=True), case.device)

                def small_graph():
                    static.copy_(torch.from_numpy(image))
                    replay_small()
                    return finish(dense_small)
                results["cuda_graph_heatmap_input_size_fp16"] = timed(small_graph, case.device, runs, warmup)
            except Exception as error:  # noqa: BLE001
                results["cuda_graph_heatmap_input_size_fp16"] = {"error": f"{type(error).__name__}: {error}"}
    net.to(memory_format=torch.contiguous_format)
    return results


def cpu_side_rows(case: Case, runs: int, warmup: int) -> dict:
    """What the existing runtime code costs around the network (CPU preprocessing; Detector.detect)."""
    from astrocyte_lab.runtime.preprocess import preprocess

    image = case.image()
    rows = {"runtime_preprocess_cpu": timed(lambda: preprocess(image, case.meta_input()), case.device,
                                            max(3, runs // 4), 1)}
    if case.detector is not None:
        rows["Detector.detect"] = timed(lambda: case.detector.detect([image], 1), case.device, runs, warmup)
    return rows


def throughput(case: Case, batches: tuple[int, ...], fp16: bool, channels_last: bool, runs: int) -> dict:
    import torch

    width, height = case.input
    out: dict[str, Any] = {"fp16": fp16, "channels_last": channels_last}
    net = case.net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    for batch in batches:
        try:
            x = torch.randn(batch, case.channels, height, width, device=case.device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)

            @torch.no_grad()
            def call(x=x):
                with torch.autocast(case.device.type, dtype=torch.float16, enabled=fp16):
                    return net(x)
            ms = timed(call, case.device, runs, 2)["median_ms"]
            out[f"batch_{batch}"] = {"ms": ms, "images_per_s": round(batch * 1000.0 / ms, 1)}
        except Exception as error:  # noqa: BLE001
            out[f"batch_{batch}"] = {"error": f"{type(error).__name__}: {error}"}
        finally:
            if case.device.type == "cuda":
                torch.cuda.empty_cache()
    net.to(memory_format=torch.contiguous_format)
    return out


def check_pipeline(case: Case) -> dict:
    """The device-side preprocessing against the runtime's numpy ``preprocess`` on the same image."""
    import torch

    from astrocyte_lab.runtime.preprocess import preprocess

    image = case.image()
    expected = preprocess(image, case.meta_input())
    got = gpu_preprocess(torch.from_numpy(image).to(case.device), case.input, case.channels,
                         *stats(case))[0].cpu().numpy()
    return {"max_abs_diff_vs_runtime_preprocess": float(np.abs(got - expected).max())}


def latency_module(report: Report, module: str, args, device, ws, trained: str | None) -> None:
    cuda = device.type == "cuda"
    scale = 8 if args.quick else 1
    runs, warmup = (3, 1) if args.quick else (args.runs, 10)
    case = build_case(module, device, scale, ws, trained)
    entry: dict[str, Any] = {"camera": list(case.camera), "input": list(case.input)}
    report.data["latency"][module] = entry
    report.data["pipeline_check"][module] = check_pipeline(case)
    entry["network"] = network_variants(case, runs, warmup, cuda)
    eager = {k: v["median_ms"] for k, v in entry["network"].items()
             if "median_ms" in v and not k.startswith("cuda_graph")}
    best = min(eager, key=eager.get) if eager else "fp32"
    fp16, channels_last = "fp16" in best, best.startswith("channels_last")
    entry["pipeline"] = pipeline_variants(case, runs, warmup, cuda, fp16, channels_last)
    if not cuda or fp16:  # and the pipeline in fp32, when the fastest network variant was fp16
        entry["pipeline_fp32"] = pipeline_variants(case, runs, warmup, cuda, False, channels_last)
    entry["cpu_side"] = cpu_side_rows(case, runs, warmup)
    entry["throughput"] = throughput(case, (2,) if args.quick else (8, 32), fp16, channels_last,
                                     3 if args.quick else 20)
    report.save()


# ------------------------------------------------------------------------------------------ step 4: table


def best_of(rows: dict) -> tuple[str, float] | None:
    found = {k: v["median_ms"] for k, v in rows.items() if isinstance(v, dict) and "median_ms" in v}
    if not found:
        return None
    label = min(found, key=found.get)
    return label, found[label]


def table(report: Report) -> list[str]:
    lines = ["", "training (public API, quick-start settings, short runs; s/epoch includes validation):",
             f"{'run':<22}{'trains':>7}{'s/epoch':>9}{'img/s':>9}  metrics / test"]
    for key, row in report.data["training"].items():
        if "error" in row:
            lines.append(f"{key:<22}{'no':>7}  {' '.join(str(row['error']).split())[:100]}")
            continue
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in list(row.get("metrics", {}).items())[:2])
        tested = row.get("test") or {}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in tested.items() if isinstance(v, float) and k != "seconds")[:60]
        lines.append(f"{key:<22}{'yes':>7}{row['epoch_s']:>9.3f}{row['images_per_s'] or 0:>9.1f}  {metrics}"
                     + (f"; test {shown}" if shown else ""))
    lines += ["", "batch-1 latency (median ms); the vendor's RTX 4090 includes the resize from the camera image:",
              f"{'module':<15}{'net fp32':>9}{'best net':>10}  {'variant':<26}{'pipeline':>9}  {'variant':<18}"
              f"{'vendor':>7}{'ratio':>7}{'b8 img/s':>10}{'b32 img/s':>10}"]
    details = []
    for module in MODULES:
        entry = report.data["latency"].get(module)
        if not entry or "network" not in entry:
            lines.append(f"{module:<15} not measured")
            continue
        net = entry.get("network", {})
        fp32 = net.get("fp32", {}).get("median_ms", float("nan"))
        best = best_of(net) or ("-", float("nan"))
        pipe_rows = {**{f"{k}": v for k, v in entry.get("pipeline", {}).items()},
                     **{f"fp32 {k}": v for k, v in entry.get("pipeline_fp32", {}).items()}}
        pipe_rows = {k: v for k, v in pipe_rows.items() if "input_size" not in k}
        pipe = best_of(pipe_rows) or ("-", float("nan"))
        vendor = VENDOR_MS[module]
        through = entry.get("throughput", {})
        b8 = through.get("batch_8", {}).get("images_per_s", float("nan"))
        b32 = through.get("batch_32", {}).get("images_per_s", float("nan"))
        lines.append(f"{module:<15}{fp32:>9.2f}{best[1]:>10.2f}  {best[0]:<26}{pipe[1]:>9.2f}  {pipe[0]:<18}"
                     f"{vendor:>7.1f}{pipe[1] / vendor:>7.2f}{b8:>10.1f}{b32:>10.1f}")
        rows = {f"net {k}": v for k, v in net.items()}
        rows.update({f"pipeline{' fp16' if entry.get('pipeline', {}).get('fp16') else ''} {k}": v
                     for k, v in entry.get("pipeline", {}).items()})
        rows.update({f"pipeline fp32 {k}": v for k, v in entry.get("pipeline_fp32", {}).items()})
        rows.update(entry.get("cpu_side", {}))
        shown = ", ".join(f"{k} {v['median_ms']:.2f}" if "median_ms" in v else f"{k} ERROR {v.get('error', '')[:60]}"
                          for k, v in rows.items() if isinstance(v, dict))
        details.append(f"  {module}: {shown}")
    return lines + ["", "all rows (median ms):", *details]


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write the JSON summary here")
    parser.add_argument("--device", default="cuda:0", help="cuda:N (default cuda:0), or cpu with --quick")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few runs: tests the script's code paths")
    parser.add_argument("--runs", type=int, default=60, help="timed calls per latency row (after warm-up)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per run")
    parser.add_argument("--budget", type=float, default=330.0, help="seconds for everything (steps are skipped)")
    parser.add_argument("--latency-reserve", type=float, default=110.0,
                        help="seconds of --budget kept for the latency steps (training stops before)")
    parser.add_argument("--workdir", type=Path, help="keep the samples and workspace here (default: temporary)")
    parser.add_argument("--only", action="append", choices=MODULES, help="only these modules (repeat)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)

    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here; skipped (use --device cpu --quick to test the script)")
        return 0
    if device.type != "cuda" and not args.quick:
        print("benchmarks/gpu.py: a CPU run needs --quick (it only checks the code paths)")
        return 0
    report = Report(args.out, args)
    info = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    report.data["machine"] = info
    print(f"gpu benchmark: {info}", flush=True)
    modules = tuple(args.only or MODULES)
    with contextlib.ExitStack() as stack:
        root = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="astro-gpu-")))
        root.mkdir(parents=True, exist_ok=True)
        run(report, args, device, root, modules)
    for line in table(report):
        print(line)
    report.data["table"] = table(report)
    report.save()
    return 0


def run(report: Report, args, device, root: Path, modules: tuple[str, ...]) -> None:
    from astrocyte_lab import Workspace

    budget = args.budget - (0 if args.skip_training else args.latency_reserve)
    ws = Workspace(root / "workspace")
    trained: dict[str, str] = {}
    if not args.skip_training:
        sources = step(report, "samples", 90, budget, lambda: make_samples(root)) or {}
        for module in modules:
            source = sources.get(SAMPLE[module])
            if source is None:
                continue
            if step(report, f"{module}:dataset", 60, budget, lambda m=module, s=source: create_dataset(ws, m, s)) \
                    is None:
                continue
            amps = (True,) if module == "anomaly" else (True, False)
            for amp in amps:
                name = f"{module}-{'amp' if amp else 'fp32'}"
                limit = 60 if args.quick else 75

                def train_once(m=module, n=name, a=amp, limit=limit) -> dict:
                    config = module_config(m, str(device), a, args.quick, 1 if args.quick else args.epochs)
                    return train_module(ws, m, n, config, limit)
                result = step(report, f"{name}:train", limit + 5, budget, train_once)
                report.data["training"][name] = result or {"error": report.data["steps"][f"{name}:train"].get(
                    "error", report.data["steps"][f"{name}:train"]["status"])}
                if result is not None and amp:
                    trained[module] = name
            if module in trained:
                name = trained[module]
                tested = step(report, f"{name}:test", 60, budget, lambda m=module, n=name: test_module(
                    ws, m, n, str(device)))
                exported = step(report, f"{name}:export", 60, budget, lambda m=module, n=name: export_module(
                    ws, m, n, root))
                report.data["training"][name].update(test=tested, export=exported)
                report.save()
    for module in modules:
        step(report, f"{module}:latency", 45 if not args.quick else 120, args.budget,
             lambda m=module: latency_module(report, m, args, device, ws, trained.get(m)))


if __name__ == "__main__":
    sys.exit(main())
