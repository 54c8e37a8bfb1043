"""Random search draws its points as Ray Tune's sampling domains do, without importing Ray Tune."""

import subprocess
import sys

import numpy as np
import pytest

from regsweep._space import _draw, random_points
from regsweep._spec import Distribution

KINDS = [
    {"choice": [0.1, "instance", [64, 32], None]},
    {"uniform": [0.0, 0.6]},
    {"loguniform": [1.0e-5, 1.0e-1]},
    {"randint": [1, 4]},
    {"quniform": [0.0, 0.5, 0.1]},
    {"quniform": [-2.0, 3.0, 0.25]},
]


def ray_domain(dist):
    from ray import tune

    args = dist.args
    return {"choice": lambda: tune.choice(args), "uniform": lambda: tune.uniform(*args),
            "loguniform": lambda: tune.loguniform(*args), "randint": lambda: tune.randint(args[0], args[1] + 1),
            "quniform": lambda: tune.quniform(*args)}[dist.kind]()


@pytest.mark.parametrize("raw", KINDS, ids=lambda raw: next(iter(raw)))
def test_draws_equal_ray_tunes_own_domains_from_the_same_generator(raw):
    dist = Distribution(**raw)
    domain = ray_domain(dist)
    for seed in range(5):
        ours, theirs = np.random.RandomState(seed), np.random.RandomState(seed)
        drawn = [_draw(dist, ours) for _ in range(50)]
        expected = []
        for _ in range(50):
            value = domain.sample(random_state=theirs)
            expected.append(value.item() if hasattr(value, "item") else value)
        assert drawn == expected
        assert [type(v) for v in drawn] == [type(v) for v in expected]


def test_random_points_do_not_import_ray():
    code = ("import sys\nfrom regsweep._space import random_points\nfrom regsweep._spec import Distribution\n"
            "space = {'lr': Distribution(loguniform=[1e-4, 1e-1]), 'norm': Distribution(grid=['batch', 'layer'])}\n"
            "points = random_points(space, 3, seed=0)\n"
            "print(len(points), any(name.split('.')[0] == 'ray' for name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["6", "False"]


def test_a_seed_gives_the_same_points_and_another_seed_other_points():
    space = {"dropout": Distribution(uniform=[0.0, 0.5]), "depth": Distribution(randint=[1, 4])}
    assert random_points(space, 4, seed=1) == random_points(space, 4, seed=1)
    assert random_points(space, 4, seed=1) != random_points(space, 4, seed=2)
