"""Run a training script unchanged and print the loss terms it computes, for scripts that never
print their loss (Disco4D's 4D stage keeps `# print(loss.item())` commented out).

Wraps one torch.nn.functional loss (e.g. mse_loss): every call is recorded, and at each
Tensor.backward() the mean of the terms recorded since the previous one is printed as
"[envbuilder] step N mse_loss=X terms=K". The script itself runs as __main__ with its own argv,
so the same command works with stand-in and with real models.

Usage: python loss_watch.py --watch mse_loss SCRIPT [SCRIPT ARGS ...]
"""

import runpy
import sys
from pathlib import Path


def main():
    args = sys.argv[1:]
    if len(args) < 3 or args[0] != "--watch":
        sys.exit("usage: loss_watch.py --watch LOSS_FUNCTION SCRIPT [ARGS ...]")
    name, script, rest = args[1], args[2], args[3:]

    import torch
    import torch.nn.functional as F

    original = getattr(F, name, None)
    if original is None:
        sys.exit(f"loss_watch: torch.nn.functional has no {name}")
    terms = []

    inside = [False]

    def watched(*a, **k):
        if inside[0]:  # torch re-enters through the module attribute when a torch-function mode is active
            return original(*a, **k)
        inside[0] = True
        try:
            out = original(*a, **k)
        finally:
            inside[0] = False
        terms.append(float(out.detach().float().mean()))
        return out

    setattr(F, name, watched)
    backward = torch.Tensor.backward
    step = [0]

    def counted_backward(self, *a, **k):
        if terms:
            step[0] += 1
            print(f"[envbuilder] step {step[0]} {name}={sum(terms) / len(terms):.7f} terms={len(terms)}", flush=True)
            terms.clear()
        return backward(self, *a, **k)

    torch.Tensor.backward = counted_backward
    sys.argv = [script, *rest]
    sys.path[0] = str(Path(script).resolve().parent)  # as `python SCRIPT` would have it
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
