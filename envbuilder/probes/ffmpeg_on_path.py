"""Run a command with an `ffmpeg` on PATH: the system's when there is one, else the binary that the
imageio-ffmpeg wheel ships (linked as `ffmpeg` into a temporary folder). For methods that call
the ffmpeg program to assemble their frames (CAP4D's animate.py:46-62, `subprocess.run(["ffmpeg",
...], check=True)`) on machines without a system ffmpeg.

Usage: python ffmpeg_on_path.py COMMAND [ARGS ...]; exits with the command's status.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: ffmpeg_on_path.py COMMAND [ARGS ...]")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="envbuilder-ffmpeg-") as tmp:
        if shutil.which("ffmpeg") is None:
            try:
                import imageio_ffmpeg
            except ImportError:
                sys.exit("no ffmpeg on PATH and imageio-ffmpeg is not installed: install one of them")
            (Path(tmp) / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
            env["PATH"] = tmp + os.pathsep + env.get("PATH", "")
            print(f"[envbuilder] ffmpeg from imageio-ffmpeg: {imageio_ffmpeg.get_ffmpeg_exe()}", flush=True)
        sys.exit(subprocess.call(sys.argv[1:], env=env))


if __name__ == "__main__":
    main()
