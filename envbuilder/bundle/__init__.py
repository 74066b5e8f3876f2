"""Offline bundles: everything a machine with no network needs to build a locked env, in one
folder that can travel (a USB disk, scp, the parts of `--split`). One module per concern:

- make.py     `envbuilder bundle RECIPE --locked FILE | --from-env PREFIX --output DIR`
- check.py    SHA256SUMS and bundle.json: a changed byte names its file; the wrong Python or
              platform, or a base whose torch differs, is refused with what was found
- gitrepos.py git bundles of every repository at the commits used, and their restore as mirrors
- split.py    `--split SIZE` parts, and `envbuilder bundle join`

Layout of a bundle:

    bundle.json               what it is for: recipe, lock, target (Python, platform), what was left
                              out (--without torch) and the torch it expects instead, sizes
    pylock.<recipe>.toml      the lock, every file as a relative path (its url kept)
    wheels/                   every file of the lock, for the target Python and platform
    cache/                    the extension wheels built for the lock's keys: a file:// binary cache
    git/                      <owner+name>.bundle for the source, every submodule, the extensions'
                              own repositories; repos.json maps URLs to them
    data/                     the recipe, extension and patch files used (a --recipes folder)
    tools/                    envbuilder's own pip and uv wheels for the target
    assets/                   the free assets the recipe names that were in place (weights)
    SHA256SUMS                every file above; checked before anything is used
"""

from __future__ import annotations

BUNDLE_FILE = "bundle.json"
SUMS = "SHA256SUMS"
SCHEMA = 1
# --without torch: what a base with torch provides (research/locks.md; the nvidia-* and cuda-*
# runtime wheels are torch's dependencies on PyPI, triton its compiler)
TORCH_STACK = ("torch", "torchvision", "torchaudio", "triton")
TORCH_STACK_PREFIXES = ("nvidia-", "cuda-")


def in_torch_stack(name: str) -> bool:
    return name in TORCH_STACK or name.startswith(TORCH_STACK_PREFIXES)
