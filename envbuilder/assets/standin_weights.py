"""Write stand-in checkpoints built from code: the network is constructed by the method's own model
definition (or torchvision's), with random weights, and saved as the state dict the method loads,
so keys and shapes are the real checkpoint's by construction (its loaders use strict
load_state_dict). Runs with the env's Python, which has torch; never downloads anything.

Every file carries the marker "envbuilder_stand_in" in the state dict's _metadata (torch keeps
_metadata through save/load and load_state_dict ignores names that are no module's), which
envbuilder's validators find in the checkpoint's data.pkl without loading its tensors.

Writers:
  cap4d-mmdm         CAP4D's MMDM (cap4d/inference/utils.py:45-61 instantiates config.model from
                     data/weights/mmdm/config_dump.yaml and loads the newest checkpoints/*.ckpt)
  torchvision-vgg16  torchvision's VGG16 ImageNet weights (vgg16-397923af.pth in torch's hub)
  torchvision-alexnet  torchvision's AlexNet ImageNet weights (alexnet-owt-7be5be79.pth), which
                     lpips.LPIPS(net="alex") loads through torchvision on first use
  lpips-vgg          LPIPS v0.1 linear layers for VGG (lin0..lin4.model.1.weight, 1 x C x 1 x 1)

Usage: python standin_weights.py WRITER DEST [--src ROOT]; prints one JSON line.
"""

import argparse
import collections
import json
import os
import sys
import time
from pathlib import Path

STAND_IN_KEY = "envbuilder_stand_in"
STAND_IN_TEXT = "stand-in written by envbuilder: random weights with the real checkpoint's keys and shapes"


def cap4d_mmdm(src):
    """The MMDM from the tree's own config and classes (random init, as before training)."""
    os.chdir(src)  # the model's config and the conditioning's assets are read relative to the root
    sys.path.insert(0, str(src))
    from controlnet.ldm.util import instantiate_from_config
    from omegaconf import OmegaConf

    config = OmegaConf.load(Path(src) / "data" / "weights" / "mmdm" / "config_dump.yaml")
    return instantiate_from_config(config.model).cpu().state_dict()


def torchvision_vgg16(src):
    import torchvision

    return torchvision.models.vgg16(weights=None).state_dict()


def torchvision_alexnet(src):
    import torchvision

    return torchvision.models.alexnet(weights=None).state_dict()


def lpips_vgg(src):
    import torch

    state = collections.OrderedDict()
    generator = torch.Generator().manual_seed(0)
    for i, channels in enumerate((64, 128, 256, 512, 512)):
        state[f"lin{i}.model.1.weight"] = torch.rand((1, channels, 1, 1), generator=generator) * 0.1
    state._metadata = collections.OrderedDict()
    return state


WRITERS = {
    "cap4d-mmdm": cap4d_mmdm,
    "torchvision-vgg16": torchvision_vgg16,
    "torchvision-alexnet": torchvision_alexnet,
    "lpips-vgg": lpips_vgg,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("writer", choices=sorted(WRITERS))
    parser.add_argument("dest", type=Path)
    parser.add_argument("--src", type=Path, help="the method's source tree (for writers that build its model)")
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    started = time.monotonic()
    dest = args.dest.resolve()
    state = WRITERS[args.writer](args.src.resolve() if args.src else None)
    metadata = getattr(state, "_metadata", None)
    if metadata is None:
        metadata = state._metadata = collections.OrderedDict()
    metadata[STAND_IN_KEY] = {"note": STAND_IN_TEXT, "writer": args.writer}
    tensors = sum(1 for v in state.values() if isinstance(v, torch.Tensor))
    params = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial")
    torch.save(state, tmp)
    os.replace(tmp, dest)  # never a half-written checkpoint under the real name
    print(
        json.dumps(
            {
                "written": str(dest),
                "writer": args.writer,
                "tensors": tensors,
                "values": params,
                "bytes": dest.stat().st_size,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
