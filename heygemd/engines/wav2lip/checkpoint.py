"""Reading and verifying an operator-supplied Wav2Lip checkpoint.

The published files are ``torch.save``'d dicts ``{"state_dict", "optimizer", "global_step",
"global_epoch"}`` in torch's legacy (non-zip) format, sometimes with DataParallel's ``module.``
prefix on every key. They are read with ``weights_only=True`` (no arbitrary code runs) and every
key and shape is checked against :class:`Wav2LipGenerator` before anything is loaded.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import structlog
import torch

from heygemd.engines.wav2lip.model import Wav2LipGenerator
from heygemd.errors import ConfigError

log = structlog.get_logger(__name__)

CHECKPOINT_KEY = "engine.wav2lip.checkpoint"
DATA_PARALLEL_PREFIX = "module."
OPTIONAL_SUFFIX = "num_batches_tracked"  # absent from files written by very old torch
MAX_LISTED = 3  # keys named in one message before "... and N more"

StateDict = dict[str, torch.Tensor]


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every state_dict key of the generator and its shape (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = Wav2LipGenerator()
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def strip_prefix(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Remove DataParallel's ``module.`` prefix when every key carries it."""
    keys = list(state)
    if keys and all(k.startswith(DATA_PARALLEL_PREFIX) for k in keys):
        return {k[len(DATA_PARALLEL_PREFIX) :]: v for k, v in state.items()}
    return dict(state)


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED])
    more = len(keys) - MAX_LISTED
    return f"{shown} ... and {more} more" if more > 0 else shown


def verify_state_dict(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]]
) -> list[str]:
    """Problems (plain sentences) that keep ``state`` from loading into the generator; [] if none.

    ``state`` must already have its ``module.`` prefix stripped. Missing ``num_batches_tracked``
    buffers are tolerated (the model's own default is kept).
    """
    problems = []
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} is {tuple(state[k].shape)}, expected {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing:
        problems.append(f"{len(missing)} generator weights are missing: {_listed(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} keys are not Wav2Lip's: {_listed(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} weights have the wrong shape: {_listed(wrong)}")
    return problems


def _state_dict_of(content: object) -> Mapping[str, torch.Tensor] | None:
    """The state_dict inside a loaded checkpoint: ``content["state_dict"]`` or a bare dict."""
    if not isinstance(content, Mapping):
        return None
    inner = content.get("state_dict", content)
    if not isinstance(inner, Mapping) or not inner:
        return None
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in inner.items()):
        return None
    return inner


def read_state_dict(path: Path) -> StateDict:
    """Read the generator weights from ``path`` (on the CPU), prefix stripped and verified.

    Raises ConfigError naming the file and saying what is wrong: missing, unreadable or
    truncated, not a Wav2Lip checkpoint, or keys/shapes that do not match the generator.
    """
    if not path.is_file():
        raise ConfigError(
            f"{CHECKPOINT_KEY}: Wav2Lip checkpoint not found: place your Wav2Lip checkpoint at "
            f"{path} (e.g. wav2lip.pth or wav2lip_gan.pth; heygemd cannot download it)"
        )
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, pickle.UnpicklingError) as err:
        raise ConfigError(
            f"{CHECKPOINT_KEY}: cannot read {path}: the file is truncated, corrupt or not a "
            f"torch checkpoint ({type(err).__name__}: {str(err)[:200]})"
        ) from None
    state = _state_dict_of(content)
    if state is None:
        raise ConfigError(
            f"{CHECKPOINT_KEY}: {path} holds no state_dict of tensors: not a Wav2Lip checkpoint"
        )
    state = strip_prefix(state)
    problems = verify_state_dict(state, expected_shapes())
    if problems:
        raise ConfigError(
            f"{CHECKPOINT_KEY}: {path} does not match the Wav2Lip generator "
            f"(is it the SyncNet expert or another model?): " + "; ".join(problems)
        )
    return state


def load_generator(path: Path, device: str) -> Wav2LipGenerator:
    """Build the generator, load verified weights from ``path``, put it on ``device`` in eval mode.

    fp16 on CUDA, fp32 on the CPU. Raises ConfigError for any checkpoint problem.
    """
    state = read_state_dict(path)
    model = Wav2LipGenerator()
    model.load_state_dict(state, strict=False)  # verified above; only optional buffers may lack
    model.eval().requires_grad_(False)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = model.to(device=device, dtype=dtype)
    log.info("wav2lip.loaded", path=str(path), device=device, dtype=str(dtype))
    return model


def checkpoint_problems(path: Path) -> list[str]:
    """What is wrong with the checkpoint at ``path`` (plain sentences), [] when it loads."""
    try:
        read_state_dict(path)
    except ConfigError as err:
        return [err.message]
    return []
