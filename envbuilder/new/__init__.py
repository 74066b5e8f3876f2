"""`envbuilder new`: a first recipe for a method envbuilder has never seen, read from its own tree.

Nothing here runs the method's code: setup.py files and scripts are parsed with `ast` and
evaluated by a small interpreter that knows strings, lists, os.path, glob and pathlib (pyeval),
never by Python itself. One module per concern:

- tree: the repository (or directory) at a commit, with its submodules at their gitlinks
- pyeval: static evaluation of the simple Python that setup.py files are made of
- setup_py, jit, cmake, readme: where the CUDA/C++ extensions are and how they are built
- declared, imports: what the method says it needs, and what its code imports
- index, pins: the package index, and the rules that move old pins to this era (data)
- known, fingerprint: the shared extensions envbuilder ships, and whether a tree really is one
- assets: licensed models recognised from the paths the code opens (data)
- analyse: all of the above -> a Draft; write: the Draft -> a recipe folder
- trial: `--try`, a build of the draft's sources, patches and extensions for this host's arch
"""
