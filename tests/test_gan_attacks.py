import numpy as np
import pytest
import torch

from gifd.attacks import GGL, GIAS, GIFD, make_attack
from gifd.attacks.gan import chain_states, ilo_lr, project_l1_ball, to_victim
from gifd.fl import LocalTraining, client_update
from gifd.generators import make_generator
from gifd.matching import UpdateSimulator, gradient_distance


def _brute_force_l1_projection(d: np.ndarray, r: float) -> np.ndarray:
    """argmin ||x - d||^2 s.t. ||x||_1 <= r, by a generic solver on x = p - q with p, q >= 0."""
    from scipy.optimize import minimize

    n = d.size
    obj = lambda v: ((v[:n] - v[n:] - d) ** 2).sum()  # noqa: E731
    cons = [{"type": "ineq", "fun": lambda v: r - v.sum()}]
    res = minimize(obj, np.zeros(2 * n), bounds=[(0, None)] * (2 * n), constraints=cons, method="SLSQP",
                   options={"ftol": 1e-12, "maxiter": 500})  # fmt: skip
    return res.x[:n] - res.x[n:]


@pytest.mark.parametrize("seed", range(5))
def test_l1_projection_matches_brute_force_and_stays_in_the_ball(seed):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(3, 2, 4, generator=g, dtype=torch.float64) * 3
    radius = 4.0
    p = project_l1_ball(d, radius)
    for i in range(3):
        want = _brute_force_l1_projection(d[i].flatten().numpy(), radius)
        np.testing.assert_allclose(p[i].flatten().numpy(), want, atol=1e-4)
    assert (p.flatten(1).abs().sum(1) <= radius + 1e-9).all()
    small = d / d.flatten(1).abs().sum(1).view(-1, 1, 1) * 2  # already inside
    assert torch.equal(project_l1_ball(small, radius), small)
    assert torch.equal(project_l1_ball(d, 0), d)  # radius <= 0 disables the projection


def test_ilo_learning_rate_ramp():
    assert ilo_lr(0.0, 0.1) == 0.0
    assert ilo_lr(0.05, 0.1) == pytest.approx(0.1)
    assert ilo_lr(0.25, 0.1) == pytest.approx(0.1)
    assert ilo_lr(0.625, 0.1) == pytest.approx(0.05)
    assert ilo_lr(1.0, 0.1) == pytest.approx(0.0)


@pytest.fixture
def gan_setup(tiny_setup):
    task, model, images, labels, update = tiny_setup
    torch.manual_seed(0)
    G = make_generator("dcgan", num_classes=5).eval()
    return task, model, G, images, labels, update


def _initial_distance(G, task, model, update, labels, restarts, seed, distance):
    state = chain_states(G, labels, restarts, seed)
    sim = UpdateSimulator(model, update)
    with torch.no_grad():
        x = to_victim(G.render(0, state), task, restarts)
        return gradient_distance(distance)(sim(x, labels.expand(restarts, -1)), update.tensors).min().item()


@pytest.mark.parametrize("method", ["gifd", "ggl", "gias"])
def test_every_gan_attack_end_to_end_lowers_the_gradient_distance(gan_setup, method):
    task, model, G, images, labels, update = gan_setup
    attack = make_attack(method, model, task, generator=G, budget=240, progress=False)
    result = attack(update)
    assert result.images.shape == images.shape and result.evaluations <= 240
    start = _initial_distance(G, task, model, update, labels, attack.config.restarts, attack.config.seed,
                              attack.config.distance)  # fmt: skip
    assert result.score < start
    assert result.labels.tolist() == labels.tolist()


def test_gifd_returns_the_best_image_over_restarts_and_stages(gan_setup):
    task, model, G, _, labels, update = gan_setup
    result = GIFD(model, task, generator=G, budget=200, progress=False)(update)
    every = [s for stage in result.extras["stage_restart_scores"] for s in stage]
    assert result.score == min(every)
    assert result.extras["stage_scores"][result.extras["best_stage"]] == result.score
    assert len(result.extras["stage_images"]) == result.extras["last_stage"] + 1 == G.num_stages
    sim = UpdateSimulator(model, update)
    with torch.no_grad():
        again = gradient_distance("cosine")(sim(task.normalize(result.images)[None], labels[None]), update.tensors)
    assert again.item() == pytest.approx(result.score, rel=1e-3, abs=1e-5)


def test_gifd_batched_restarts_equal_one_chain_alone(gan_setup):
    # in float64: in float32 a batch of 4 and a batch of 1 round differently with several threads (1e-4 apart
    # after 12 steps), which would hide a real difference between the chains
    task, model, G, images, labels, _ = gan_setup
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model, G = model.double(), G.double()
        update = client_update(model, task, images.double(), labels)
        four = GIFD(model, task, generator=G, restarts=4, steps_per_stage=3, budget=200, seed=3, progress=False)(update)
        one = GIFD(model, task, generator=G, restarts=1, steps_per_stage=3, budget=50, seed=3, progress=False)(update)
    finally:
        torch.set_default_dtype(previous)
        model.float(), G.float()
    for s4, s1 in zip(four.extras["stage_restart_scores"], one.extras["stage_restart_scores"]):
        assert s4[0] == pytest.approx(s1[0], rel=1e-9, abs=1e-12)


def test_gifd_stays_in_each_stages_l1_ball(gan_setup, monkeypatch):
    import gifd.attacks.gifd as gifd_module

    task, model, G, _, _, update = gan_setup
    seen = []
    original = gifd_module.project_l1_ball

    def spy(delta, radius):
        out = original(delta, radius)
        seen.append((out.flatten(1).abs().double().sum(1).max().item(), radius))
        return out

    monkeypatch.setattr(gifd_module, "project_l1_ball", spy)
    GIFD(model, task, generator=G, budget=200, radii=(0, 5.0, 5.0, 5.0), progress=False)(update)
    assert seen and all(norm <= r + 1e-5 for norm, r in seen)


def test_gan_attacks_invert_fedavg_updates(gan_setup):
    task, model, G, images, labels, _ = gan_setup
    update = client_update(model, task, images, labels, protocol="fedavg", local=LocalTraining(2, 0.05, 1))
    result = GIFD(model, task, generator=G, budget=120, progress=False)(update)
    start = _initial_distance(G, task, model, update, labels, 4, 0, "cosine")
    assert result.score < start


def test_gan_attacks_need_a_generator_and_valid_settings(gan_setup):
    task, model, G, _, _, _ = gan_setup
    with pytest.raises(ValueError, match="needs a generator"):
        make_attack("gifd", model, task)
    with pytest.raises(ValueError, match="cannot cover"):
        GIFD(model, task, generator=G, budget=10)
    with pytest.raises(ValueError, match="unknown GIFD preset"):
        GIFD(model, task, generator=G, preset="vqgan")
    with pytest.raises(ValueError, match="too small"):
        GIAS(model, task, generator=G, budget=9)
    with pytest.raises(ValueError, match="unknown parameter 'popsze'"):
        GGL(model, task, generator=G, popsze=3)


@pytest.mark.parametrize(
    "name,config",
    [
        ("biggan", {"resolution": 128, "channel_width": 8, "num_classes": 5, "output_size": 16}),
        ("stylegan2", {"size": 16, "style_dim": 16, "n_mlp": 2, "channels": dict.fromkeys((4, 8, 16), 8),
                       "fit_samples": 500}),
    ],
)  # fmt: skip
def test_gifd_runs_the_paper_presets_on_biggan_and_stylegan2(tiny_setup, name, config):
    task, model, _, labels, update = tiny_setup
    torch.manual_seed(0)
    G = make_generator(name, **config).eval()
    with torch.no_grad():
        for pname, p in G.named_parameters():
            if pname.endswith(("noise.weight", "gamma")):
                p.fill_(0.1)
    attack = GIFD(model, task, generator=G, budget=2 * 4 * 4 * 3, last_stage=2, restarts=2, progress=False)
    assert attack.project_latent == (name == "stylegan2") and attack.spherical_all == (name == "stylegan2")
    result = attack(update)
    assert result.extras["last_stage"] == 2 and len(result.extras["stage_scores"]) == 3
    start = _initial_distance(G, task, model, update, labels, 2, 0, "cosine")
    assert result.score < start


def test_gifd_moves_on_the_first_step_of_every_stage(gan_setup):
    """At one step per stage (the smallest budget) every stage still optimises: the ramp's first step is not 0."""
    task, model, G, _, labels, update = gan_setup
    attack = GIFD(model, task, generator=G, budget=2 * 4 * 2, restarts=2, radii=(0,), progress=False)
    assert attack.steps == 1
    result = attack(update)
    state = chain_states(G, labels, 2, 0)
    with torch.no_grad():
        start = task.denormalize(to_victim(G.render(0, state), task, 2)).clamp(0, 1)
    for k, images in enumerate(result.extras["stage_images"]):
        before = start[result.extras["stage_restart_scores"][k].index(min(result.extras["stage_restart_scores"][k]))]
        assert not torch.allclose(images, before, atol=1e-4), f"stage {k} did not move"
    assert len({round(s, 6) for s in result.extras["stage_scores"]}) > 1  # the stages differ


def test_gifd_l1_ball_is_centred_on_the_stage_start(gan_setup):
    """With a tiny radius, a stage can barely leave where the previous stage ended (a ball centred anywhere else,
    e.g. at 0, would move the feature map far away)."""
    task, model, G, _, _, update = gan_setup
    result = GIFD(model, task, generator=G, budget=60, restarts=1, radii=(0, 1e-3), progress=False)(update)
    imgs = result.extras["stage_images"]
    for k in range(1, len(imgs)):
        assert (imgs[k] - imgs[k - 1]).abs().max() < 1e-4, f"stage {k} left its ball"
    free = GIFD(model, task, generator=G, budget=60, restarts=1, radii=(0,), progress=False)(update)
    assert (free.extras["stage_images"][1] - free.extras["stage_images"][0]).abs().max() > 0.02  # it can move


class _WorseLaterStages(torch.nn.Module):
    """Wraps a staged generator so that stages 2 and later diverge (render NaN: the worst possible score)."""

    def __init__(self, G):
        super().__init__()
        self.G, self.num_stages, self.num_classes, self.image_shape = G, G.num_stages, G.num_classes, G.image_shape

    def initial_state(self, labels, generator=None):
        return self.G.initial_state(labels, generator)

    def render(self, stage, state):
        out = self.G.render(stage, state)
        return out if stage < 2 else out + float("nan")

    def advance(self, stage, state):
        return self.G.advance(stage, state)

    def variables(self, stage):
        return self.G.variables(stage)


def test_gifd_returns_the_best_stage_not_the_last(gan_setup):
    task, model, G, _, _, update = gan_setup
    result = GIFD(model, task, generator=_WorseLaterStages(G), budget=200, preset="dcgan", progress=False)(update)
    best = result.extras["best_stage"]
    assert best < result.extras["last_stage"]
    assert result.score == min(result.extras["stage_scores"]) == result.extras["stage_scores"][best]
    assert torch.equal(result.images, result.extras["stage_images"][best])


@pytest.mark.parametrize("method", ["dlg", "ig", "gi", "ggl", "gias", "gifd"])
def test_every_attack_optimises_at_the_notebook_test_parameters(method):
    """nbval runs 01 at budget 40 with 2 restarts on a ConvNet: every attack must really optimise there."""
    import json
    from pathlib import Path

    from gifd.data import load_images
    from gifd.generators import load_generator
    from gifd.models import make_model

    runs = json.loads((Path(__file__).resolve().parents[1] / "notebooks" / "runs.json").read_text())
    p = runs["test"]["01_in_distribution.ipynb"]
    data = load_images("samples", None, p["indices"])
    model = make_model(p["model"], data.task.num_classes, seed=123)
    update = client_update(model, data.task, data.images, data.labels)
    kw = {"generator": load_generator("bundled")} if method in ("ggl", "gias", "gifd") else {}
    result = make_attack(method, model, data.task, budget=p["budget"], restarts=p["restarts"], progress=False,
                         **kw)(update)  # fmt: skip
    trace = result.trace
    assert len(trace) >= 2, f"{method}: {len(trace)} optimisation steps at budget {p['budget']}"
    assert min(trace[1:]) < trace[0], f"{method} did not lower its objective: {trace[:3]} ... {trace[-3:]}"
