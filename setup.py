"""Maps the design card's top-level folders under the single `soundstage` import namespace.

Metadata lives in pyproject.toml; only the package layout is computed here, so new
sub-packages are picked up without a hand-kept list.
"""
from setuptools import find_packages, setup

ROOTS = {
    "soundstage": "framework",
    "soundstage.plugins": "plugins",
    "soundstage.data": "data",
    "soundstage.recipes": "recipes",
}

packages = []
for package, folder in ROOTS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOTS)
