"""PEP 751 locks for envbuilder: read and write pylock.<recipe>.toml, resolve a recipe's wheels
to exact, hashed files, diff two locks, install a lock with pip or uv after checking every file
ourselves, and freeze a built env into a lock. One module per concern:

- model.py      the typed lock: packages (one file each) and [tool.envbuilder] (schema there)
- tomlfile.py   read/write pylock.*.toml; malformed files raise LockFileError with key and line
- indexes.py    which indexes a resolution may use (recipe's torch index, PyPI, this machine's pip config)
- tools.py      envbuilder's own pip and uv, in a venv under the cache (never the user's env)
- download.py   the download cache: every artifact fetched once, hashed from its bytes
- resolve.py    wheels-step inputs + target Python/platform -> a Lock, without installing
- diff.py       one line per change between two locks
- install.py    verify every file of a lock, then `pip --python` / `uv pip install --python`
- freeze.py     a lock from an env envbuilder built, without resolving again
- expect.py     can this host meet the lock's toolchain (CUDA, Python, gcc)?
"""
