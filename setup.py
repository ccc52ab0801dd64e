"""The one compiled piece: the resampler's kernel (gateway/_fir.c).

optional=True: where no C compiler is at hand, the install still succeeds and
gateway.audio.Resampler runs its numpy path, which gives bit-identical audio at more CPU.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gateway._fir",
            ["gateway/_fir.c"],
            optional=True,
            extra_compile_args=["-O3", "-std=c11", "-fno-math-errno"],
        )
    ]
)
