"""The exportable anomaly detector: an anomalib torch model plus the anomaly-map step, kept apart from training.

:class:`AnomalyNet` wraps one of anomalib's torch models, built with ``pre_trained=False`` and given the
backbone weights from :mod:`registry` (never downloaded):

* ``patchcore`` (``PatchcoreModel``): pooled multi-level patch features, distance of each patch to its
  nearest neighbour in the memory bank (anomalib's ``euclidean_dist`` expansion, minimised before the root:
  :func:`nearest_distances`; the bank is scanned in chunks so the distance matrix stays small at high
  resolution), plus, when fitted, the whole-image layout term of :mod:`layout` (in the same units);
* ``padim`` (``PadimModel``): Mahalanobis distance of each patch to the Gaussian of its position;
* ``dfm`` (``DFMModel``, image level): PCA feature-reconstruction error or Gaussian NLL of the pooled
  features of one deeper level.

``forward`` maps a normalised ``(N, C, H, W)`` batch (grey repeats to 3 channels) to ``(score (N,),
anomaly_map (N, 1, H, W))``. For the pixel-level models the patch distances are brought to the input size
(nearest for PatchCore, bilinear for PaDiM, as anomalib does) and smoothed by anomalib's Gaussian kernel
applied as two 1-D passes (:class:`SeparableBlur`: the same numbers, ~16x cheaper than the 2-D convolution
at 1024 x 1024), and the score is the map's maximum (the manual's "highest pixel activation"). For DFM the
score is anomalib's and the map the reconstruction error upsampled (``nll`` has no map: zeros).

With the defect segmenter of :mod:`segmenter` (PatchCore only), ``forward`` returns a third tensor,
``score_map``: PatchCore's own map, which the score is taken from, while ``anomaly_map`` adds the
segmenter's bilinearly upsampled output to it.

Devices: every tensor the network uses is a parameter or buffer of one of its modules, so ``.to(device)``
moves all of it, and whatever is fitted later (memory bank, layout term, segmenter, Gaussians, PCA) is put
on :attr:`AnomalyNet.device` by the method that installs it: callers may fit on the CPU and hand it over.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from astrocyte_lab.modules.anomaly.fast_features import OnnxFeatures, onnx_features
from astrocyte_lab.modules.anomaly.layout import LayoutModel
from astrocyte_lab.modules.anomaly.registry import BACKBONES
from astrocyte_lab.modules.anomaly.segmenter import DefectSegmenter
from astrocyte_lab.training import weights

BANK_CHUNK = 2048  # memory-bank rows compared at a time (bounds the distance matrix)


class SeparableBlur(nn.Module):
    """anomalib's ``GaussianBlur2d`` (reflect padding, normalised kernel) as a row pass and a column pass."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        from anomalib.models.components.filters import GaussianBlur2d

        kernel = GaussianBlur2d(sigma=(sigma, sigma), channels=1).kernel[0, 0]  # (k, k) = outer(ky, kx)
        self.register_buffer("row", kernel.sum(0).reshape(1, 1, 1, -1).clone(), persistent=False)
        self.register_buffer("column", kernel.sum(1).reshape(1, 1, -1, 1).clone(), persistent=False)
        self.half = kernel.shape[-1] // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_x, pad_y = min(self.half, int(width) - 1), min(self.half, int(height) - 1)
        row = self.row[..., self.half - pad_x:self.half + pad_x + 1]
        column = self.column[..., self.half - pad_y:self.half + pad_y + 1, :]
        x = F.conv2d(F.pad(x, (pad_x, pad_x, 0, 0), mode="reflect"), row / row.sum())
        return F.conv2d(F.pad(x, (0, 0, pad_y, pad_y), mode="reflect"), column / column.sum())


class AnomalyNet(nn.Module):
    """One anomalib model with its backbone; see the module docstring for what ``forward`` returns."""

    def __init__(self, architecture: str, kind: str = "patchcore", pretrained: bool = True, *,
                 padim_features: int = 100, blur_sigma: float = 4.0, dfm_components: float = 0.97,
                 dfm_score: str = "fre") -> None:
        super().__init__()
        if architecture not in BACKBONES:
            raise KeyError(f"unknown architecture {architecture!r}; choose from {sorted(BACKBONES)}")
        backbone = BACKBONES[architecture]
        self.architecture, self.kind = architecture, kind
        if kind == "patchcore":
            from anomalib.models.image.patchcore.torch_model import PatchcoreModel

            self.model = PatchcoreModel(layers=list(backbone.layers), backbone=architecture, pre_trained=False,
                                        num_neighbors=1)
        elif kind == "padim":
            from anomalib.models.image.padim.torch_model import PadimModel

            total = _channels(architecture, backbone.layers)
            self.model = PadimModel(backbone=architecture, layers=list(backbone.layers), pre_trained=False,
                                    n_features=min(padim_features, total))
        elif kind == "dfm":
            from anomalib.models.image.dfm.torch_model import DFMModel

            self.model = DFMModel(backbone=architecture, layer=backbone.image_layer, pre_trained=False,
                                  n_comps=dfm_components, score_type=dfm_score)
        else:
            raise KeyError(f"unknown anomaly model {kind!r} (patchcore, padim or dfm)")
        self.blur = SeparableBlur(blur_sigma)
        self.layout: LayoutModel | None = None  # PatchCore's optional whole-image term (layout.py)
        self.segmenter: DefectSegmenter | None = None  # PatchCore's optional heatmap term (segmenter.py)
        self.fast_features: OnnxFeatures | None = None  # set while fitting on CPU (fast_features.py)
        _trim(self.extractor)
        self.pretrained_loaded = False
        if pretrained:
            state = backbone.state()
            if state is not None:
                self.extractor.load_state_dict(state, strict=False)
                self.pretrained_loaded = True
            else:
                weights.warn_random_init(architecture)
        self.model.eval()

    @property
    def extractor(self) -> nn.Module:
        """The timm feature network inside anomalib's feature extractor."""
        return self.model.feature_extractor.feature_extractor

    @property
    def device(self) -> torch.device:
        """Where the network's tensors live (a buffer that every ``.to()`` moves with the rest)."""
        return self.blur.row.device

    @staticmethod
    def _three(x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    # ------------------------------------------------------------------------------------------ training side

    def use_fast_features(self, height: int, width: int, report: Callable[[str], None] | None = None) -> bool:
        """Run the backbone of :meth:`embed` through onnxruntime for ``height x width`` inputs (fitting on CPU)."""
        if self.kind == "dfm":
            return False
        self.fast_features = onnx_features(self.model.feature_extractor, 3, height, width, report)
        return self.fast_features is not None

    def _backbone(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.fast_features is not None and not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            return self.fast_features(x)
        return self.model.feature_extractor(x)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Training features: PatchCore / PaDiM ``(N, D, h, w)`` patch embeddings, DFM ``(N, F)`` vectors."""
        x = self._three(x)
        m = self.model
        if self.kind == "patchcore":
            return m.generate_embedding({k: m.feature_pooler(v) for k, v in self._backbone(x).items()})
        if self.kind == "padim":
            return m.generate_embedding(self._backbone(x))
        return m.get_features(x)[0]

    def set_memory_bank(self, bank: torch.Tensor) -> None:
        """Install PatchCore's ``(M, D)`` memory bank (chosen wherever) on the network's device."""
        self.model.memory_bank = bank.detach().to(self.device, torch.float32).contiguous()

    def set_layout(self, layout: LayoutModel | None) -> None:
        """Add (or remove) the whole-image layout term to PatchCore's patch distances (moved to the device)."""
        if self.kind != "patchcore" and layout is not None:
            raise ValueError("the layout model is an addition to PatchCore only")
        self.layout = None if layout is None else layout.to(self.device)

    def set_segmenter(self, segmenter: DefectSegmenter | None) -> None:
        """Add (or remove) the learned defect segmenter's term to PatchCore's heatmap (not to the score)."""
        if self.kind != "patchcore" and segmenter is not None:
            raise ValueError("the defect segmenter is an addition to PatchCore only")
        self.segmenter = None if segmenter is None else segmenter.to(self.device)

    def fit_gaussian(self, embeddings: torch.Tensor) -> None:
        """Fit PaDiM's per-position Gaussians on ``(N, D, h, w)`` Normal embeddings, on the network's device."""
        if self.kind != "padim":
            raise ValueError("per-position Gaussians belong to PaDiM only")
        self.model.gaussian.fit(embeddings.to(self.device))

    def fit_dfm(self, features: torch.Tensor, score_type: str, components: float) -> None:
        """Fit DFM's PCA (and Gaussian) on ``(N, F)`` Normal feature vectors, on the network's device."""
        from anomalib.models.components import PCA
        from anomalib.models.image.dfm.torch_model import SingleClassGaussian

        if self.kind != "dfm":
            raise ValueError("the feature PCA belongs to DFM only")
        m = self.model
        m.pca_model, m.gaussian_model = PCA(components).to(self.device), SingleClassGaussian().to(self.device)
        m.score_type, m.n_components = score_type, components
        m.memory_bank = [features.to(self.device)]
        m.fit()
        _adopt_tensor_attributes(m.pca_model)

    def output_roles(self) -> dict[str, str]:
        """The runtime role -> output name of what :meth:`forward` returns, in order."""
        roles = {"score": "score", "anomaly_map": "anomaly_map"}
        if self.segmenter is not None:
            roles["score_map"] = "score_map"
        return roles

    # ------------------------------------------------------------------------------------------ inference

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(score, anomaly_map)``, plus ``score_map`` (the map the score is taken from) with the segmenter."""
        x = self._three(x)
        size = x.shape[-2:]
        with torch.no_grad():
            if self.kind == "dfm":
                return self._dfm(x)
            if self.kind == "patchcore":
                embedding = self.embed(x)
                patches = self.patch_map(embedding)
                amap = self.blur(F.interpolate(patches, size=size))  # nearest, as anomalib's PatchCore map
                if self.segmenter is not None:  # already smooth: bilinear over the patch grid needs no blur
                    term = F.interpolate(self.segmenter(embedding), size=size, mode="bilinear", align_corners=False)
                    return amap.flatten(1).amax(1), amap + term, amap
                return amap.flatten(1).amax(1), amap
            m = self.model
            embedding = self.embed(x)
            patches = m.anomaly_map_generator.compute_distance(embedding, [m.gaussian.mean, m.gaussian.inv_covariance])
            amap = self.blur(F.interpolate(patches, size=size, mode="bilinear", align_corners=False))
            return amap.flatten(1).amax(1), amap

    def _dfm(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """anomalib's DFM scoring, with shapes taken from the tensors so the exported batch size is free."""
        m = self.model
        pooled = m.feature_extractor(x)[m.layer]
        if m.pooling_kernel_size > 1:
            pooled = F.avg_pool2d(pooled, kernel_size=m.pooling_kernel_size)
        flat = pooled.flatten(1)
        projected = m.pca_model.transform(flat)
        if m.score_type == "nll":
            return m.gaussian_model.score_samples(projected), torch.zeros_like(x[:, :1])
        error = torch.square(flat - m.pca_model.inverse_transform(projected))
        amap = error.view_as(pooled).sum(1, keepdim=True)
        return error.sum(1), F.interpolate(amap, size=x.shape[-2:], mode="bilinear", align_corners=False)

    @torch.no_grad()
    def patch_map(self, embedding: torch.Tensor) -> torch.Tensor:
        """``(N, 1, h, w)`` distance of every patch to its nearest memory-bank entry (plus the layout term)."""
        m = self.model
        batch, dim, height, width = embedding.shape
        distances = nearest_distances(m.reshape_embedding(embedding), m.memory_bank).reshape(batch, height, width)
        distances = distances.unsqueeze(1)
        return distances if self.layout is None else distances + self.layout(embedding)

    @torch.no_grad()
    def bank_distances(self, patches: torch.Tensor) -> torch.Tensor:
        """``(P, D)`` flattened patch embeddings -> ``(P,)`` distance to the nearest memory-bank entry."""
        return nearest_distances(patches, self.model.memory_bank)


def nearest_distances(patches: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """``(P, D)`` patches, ``(M, D)`` bank -> ``(P,)`` Euclidean distance of each patch to its nearest bank row.

    anomalib's ``euclidean_dist`` expands ``|x - y|^2 = |x|^2 - 2 x.y + |y|^2`` over the whole ``P x M``
    matrix, then clamps and takes square roots before the minimum. Both are monotonic, so here the minimum
    of ``|y|^2 - 2 x.y`` comes first (one fused multiply-add per chunk) and ``|x|^2``, the clamp and the root
    follow on ``P`` values only: the same distances, with three fewer passes over the large matrix. The bank
    is scanned ``BANK_CHUNK`` rows at a time so the matrix stays bounded (unrolled at export: its size is
    fixed).
    """
    if bank.shape[0] == 0:
        raise ValueError("the memory bank is empty")
    best = None
    for start in range(0, bank.shape[0], BANK_CHUNK):
        rows = bank[start:start + BANK_CHUNK]
        partial = torch.addmm(rows.pow(2).sum(1), patches, rows.T, alpha=-2.0).amin(1)
        best = partial if best is None else torch.minimum(best, partial)
    return (best + patches.pow(2).sum(1)).clamp_min(0).sqrt()


def _adopt_tensor_attributes(module: nn.Module) -> None:
    """Turn tensors a fit left as plain attributes (anomalib's ``PCA.singular_values``) into non-persistent
    buffers, so ``.to()`` moves them too while stored models keep their state-dict keys."""
    for name, value in list(vars(module).items()):
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            delattr(module, name)
            module.register_buffer(name, value, persistent=False)


def _trim(extractor: nn.Module) -> None:
    """Drop the EfficientNet stages after the last feature level used (timm runs every stage otherwise)."""
    stages = getattr(extractor, "_stage_out_idx", None)
    blocks = getattr(extractor, "blocks", None)
    if stages and isinstance(blocks, nn.Sequential) and getattr(extractor, "feature_hooks", None) is None:
        extractor.blocks = blocks[:max(stages)]


def _channels(architecture: str, layers: tuple[str, ...]) -> int:
    import timm

    net = timm.create_model(architecture, pretrained=False, features_only=True, exportable=True)
    names = [info["module"] for info in net.feature_info.info]
    return int(sum(net.feature_info.channels()[names.index(layer)] for layer in layers))


def low_res(width: int, height: int) -> tuple[int, int]:
    """The Pixel-Level Low Res input size: half of each side (at least 32 pixels)."""
    return max(32, math.ceil(width / 2)), max(32, math.ceil(height / 2))


class AnomalyExport(nn.Module):
    """What goes into ONNX: outputs ``score`` ``(N,)``, ``anomaly_map`` ``(N, 1, H, W)`` and, with the
    segmenter, ``score_map`` ``(N, 1, H, W)`` (see :meth:`AnomalyNet.output_roles`)."""

    def __init__(self, net: AnomalyNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net(image)
