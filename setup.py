"""Packaging for splitenc_plugin.

disentanglement-lib 1.5 itself is installed with ``pip install --no-deps``
(see the Makefile and README): its metadata pins ``tensorflow-probability==0.7``,
which cannot be installed beside TF 2.15 and would end in a resolver error. Its
real runtime needs are listed in ``DLIB_RUNTIME`` below instead.

``splitenc_plugin.pth`` is copied into the root of site-packages so that the
compat layer's import hook is active in every process of the environment, and
dlib's own console scripts (dlib_train, ...) work verbatim.
"""

import os
import re

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

PTH_FILE = "splitenc_plugin.pth"

# What dlib 1.5 imports at run time, at versions that work with TF 2.15.
DLIB_RUNTIME = [
    "six",
    "simplejson",
    "imageio>=2.9",
    "pandas>=1.5,<3",
    "scipy>=1.10",
    "matplotlib>=3.7",
    "seaborn>=0.12",
    "Pillow>=10",
]

# The pinned stack.
STACK = [
    "tensorflow-hub==0.15.0",
    "tensorflow-probability==0.23.0",
    "gin-config==0.5.0",
    "tf-slim==1.1.0",
    # tensorflow-hub 0.15 imports pkg_resources, which setuptools 81 removed.
    "setuptools>=65,<81",
    "numpy>=1.26,<1.27",
    # dlib's MIG uses sklearn.metrics.mutual_info_score; pinned so that scores
    # are comparable across installs.
    "scikit-learn==1.3.2",
    # The sweep runner: local pool by default, Dask distributed for clusters,
    # dask-jobqueue for the Slurm/PBS clusters it starts itself (--cluster).
    "dask[distributed]>=2024.1",
    "dask-jobqueue>=0.8",
    "tqdm>=4.66",
    # splitenc_data shapes3d reads DeepMind's 3dshapes.h5 (TF also depends on it).
    "h5py>=3.10",
]


# The shipped gin configs live at the repository's top level (beside the code
# in a checkout, where dlib users expect them); a wheel carries them inside the
# package, where splitenc_plugin.gin_dir() looks first.
GIN_DIR = "gin"
GIN_TARGET = os.path.join("splitenc_plugin", "gin")


class BuildPyWithPth(build_py):
    """Also places the start-up hook's .pth file at the top of the wheel and the gin configs in the package."""

    def run(self):
        super().run()
        self.copy_file(PTH_FILE, os.path.join(self.build_lib, PTH_FILE))
        self.copy_tree(GIN_DIR, os.path.join(self.build_lib, GIN_TARGET))

    def get_outputs(self, include_bytecode=True):
        gin_files = [os.path.join(self.build_lib, GIN_TARGET, os.path.relpath(path, GIN_DIR))
                     for path in _files_under(GIN_DIR)]
        return (super().get_outputs(include_bytecode)
                + [os.path.join(self.build_lib, PTH_FILE)] + gin_files)


def _version():
    # One source: the package's __version__, read as text (setup must not import it).
    with open(os.path.join("splitenc_plugin", "__init__.py"), encoding="utf-8") as init:
        return re.search(r'^__version__ = "([^"]+)"$', init.read(), re.MULTILINE).group(1)


def _files_under(top):
    return [os.path.join(root, name) for root, _, names in os.walk(top) for name in names]


setup(
    name="splitenc_plugin",
    version=_version(),
    description=(
        "Split Encoder and correlated-noise reparameterization for "
        "disentanglement_lib, with a compat layer for Python 3.11 + TF 2.15."
    ),
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["splitenc_plugin", "splitenc_plugin.*"]),
    py_modules=["_splitenc_plugin_hook"],
    include_package_data=True,
    install_requires=STACK + DLIB_RUNTIME,
    extras_require={
        "cpu": ["tensorflow-cpu==2.15.1"],
        "gpu": ["tensorflow[and-cuda]==2.15.1"],
        # Kept for old install commands: dask-jobqueue is now a dependency.
        "jobqueue": [],
        # pytest 9.2 changed node ids so that pytest-xdist 3.8's --dist loadgroup
        # silently stops grouping (pytest-xdist #1386): tests sharing a module
        # fixture would build it on every worker. Lift the cap once xdist fixes it.
        "test": ["pytest>=8,<9.2", "pytest-xdist>=3.5", "ruff==0.17.6"],
    },
    entry_points={
        "console_scripts": [
            "splitenc_data = splitenc_plugin.data.cli:main",
            "splitenc_reproduce = splitenc_plugin.sweep.cli:main",
            "splitenc_aggregate = splitenc_plugin.results.cli:main",
        ]
    },
    cmdclass={"build_py": BuildPyWithPth},
)
