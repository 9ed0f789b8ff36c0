"""Kernel tests of gifd.attacks.base (what every attack shares: configuration, labels, scoring, the best chain,
the budget check); small enough for mutation testing (make mutants)."""

import threading
import time
from dataclasses import asdict

import pytest
import torch
import tqdm.std

from gifd.attacks import GGL, GIAS, GIFD, InvertingGradients
from gifd.attacks.base import Attack, AttackConfig, AttackResult, progress
from gifd.defenses import Defense, defend
from gifd.fl import FLTask, ThreatModel, client_update
from gifd.matching import UpdateSimulator, cosine_distance, l2_distance

# make mutants forks one run per mutant from the process that ran these tests; tqdm's default lock is shared between
# processes, so a run killed at its timeout while holding it would hang every later run at its first progress bar (and
# tqdm's monitor thread, started by the first bar, holds it every 10 s): a lock of this process, and no monitor
tqdm.std.tqdm.set_lock(threading.RLock())
tqdm.std.tqdm.monitor_interval = 0


class Fixed(Attack):
    """An attack whose run returns its first candidate and reports ``self.used`` evaluations."""

    name = "fixed"
    used = 0

    def _run(self, update, labels):
        self.seen_labels = labels
        return AttackResult("fixed", torch.zeros(1), labels, 0.5, [0.5], 0, self.used, 0.0)


def test_progress_bar_settings():
    off = progress(7, "ig", False)
    assert off.disable is True and off.total == 7 and off.leave is False
    on = progress(5, "gifd")
    try:
        assert on.disable is False and on.total == 5 and on.desc == "gifd" and on.leave is False
    finally:
        on.close()


def test_config_validation_boundaries():
    AttackConfig(budget=2, restarts=1).validate()  # the smallest valid settings
    AttackConfig(budget=8, restarts=4).validate()
    with pytest.raises(ValueError) as e:
        AttackConfig(restarts=0).validate()
    assert str(e.value) == "restarts must be >= 1, got 0"
    with pytest.raises(ValueError) as e:
        AttackConfig(budget=7, restarts=4).validate()
    assert str(e.value) == "a budget of 7 is too small for 4 restarts"


def test_result_summary():
    r = AttackResult("gifd", torch.zeros(1), torch.tensor([3, 1]), 0.25, [0.5, 0.25], 1, 40, 1.5, [1.0])
    assert r.summary() == {"method": "gifd", "score": 0.25, "restart_scores": [0.5, 0.25], "best_restart": 1,
                           "evaluations": 40, "seconds": 1.5, "labels": [3, 1]}  # fmt: skip
    assert r.trace == [1.0] and r.config == {} and r.extras == {}


def test_attack_configuration_and_overrides(tiny_setup):
    task, model, _, _, _ = tiny_setup
    a = Fixed(model, task)
    assert a.config == AttackConfig() and a.model is model and a.task is task
    cfg = AttackConfig(budget=50)
    b = Fixed(model, task, cfg, restarts=2, seed=9)
    assert b.config is cfg and (cfg.budget, cfg.restarts, cfg.seed) == (50, 2, 9)
    with pytest.raises(ValueError) as e:
        Fixed(model, task, restarts=0)  # overrides are validated
    assert str(e.value) == "restarts must be >= 1, got 0"
    with pytest.raises(ValueError) as e:
        Fixed(model, task, zeta=1, alpha=2)
    known = "['adaptive', 'budget', 'label_strategy', 'progress', 'restarts', 'seed']"
    assert str(e.value) == f"unknown parameter 'alpha' for fixed; known: {known}"
    with pytest.raises(TypeError) as e:
        InvertingGradients(model, task, AttackConfig())
    assert str(e.value) == "InvertingGradients takes a IGConfig, not AttackConfig"


def test_labels_come_from_the_caller_then_the_update_then_inference(tiny_setup):
    task, model, images, labels, update = tiny_setup
    disclosed = client_update(model, task, images, labels, threat=ThreatModel(labels=True))
    a = Fixed(model, task, restarts=1, budget=2)
    given = a.labels_for(disclosed, torch.tensor([0.0, 2.0]))
    assert given.tolist() == [0, 2] and given.dtype == torch.long
    assert a.labels_for(disclosed, None).tolist() == [1, 3]
    other = disclosed.with_tensors(disclosed.tensors, labels=torch.tensor([0, 4]))  # disclosed, unlike the gradient
    assert a.labels_for(other, None).tolist() == [0, 4]
    assert a.labels_for(update, None).tolist() == [1, 3]  # inferred (Yin et al.: distinct labels)
    with pytest.raises(ValueError, match="iDLG infers the label of a single sample, the batch has 2"):
        Fixed(model, task, label_strategy="idlg").labels_for(update, None)  # the configured strategy is used


def test_simulator_applies_the_adaptive_transformation_only_when_asked(tiny_setup):
    task, model, _, _, update = tiny_setup
    pruned = defend(update, Defense("pruning", 0.5))
    assert Fixed(model, task).simulator(pruned).transform is not None
    assert Fixed(model, task, adaptive=False).simulator(pruned).transform is None
    assert Fixed(model, task).simulator(update).transform is None
    images = tiny_setup[2]
    sot = defend(update, Defense("soteria", 0.5), model=model, task=task, images01=images, labels=tiny_setup[3])
    out = Fixed(model, task).simulator(sot)(task.normalize(images)[None], tiny_setup[3][None])
    zero = (sot.as_dict()["fc.weight"] == 0).all(dim=0)  # Soteria's zeroed columns, read off with the model's head
    assert zero.sum() == zero.numel() // 2 and (out[sot.names.index("fc.weight")][0][:, zero] == 0).all()
    sim = Fixed(model, task).simulator(update, bn_prior=True)
    assert sim.bn_prior is True and sim.model is model


def test_generator_is_seeded_by_the_config(tiny_setup):
    task, model, _, _, _ = tiny_setup
    g = Fixed(model, task, seed=11).generator()
    assert torch.equal(torch.randn(5, generator=g), torch.randn(5, generator=torch.Generator().manual_seed(11)))


def test_score_is_the_gradient_distance_alone_without_autograd(tiny_setup):
    task, model, images, labels, update = tiny_setup
    a = Fixed(model, task)
    sim = UpdateSimulator(model, update)
    x = torch.stack([task.normalize(images), torch.randn(2, 3, 16, 16)]).requires_grad_(True)
    y = labels.expand(2, -1)
    target = list(update.tensors)
    for name, dist in (("l2", l2_distance), ("cosine", cosine_distance)):
        s = a.score(sim, x, y, target, name)
        assert s.shape == (2,) and not s.requires_grad
        torch.testing.assert_close(s, dist(sim(x, y), target).detach())
    assert a.score(sim, x, y, target, "cosine")[0] == pytest.approx(0, abs=1e-5)


def test_box_clamps_each_channel_to_the_valid_images():
    task = FLTask(image_shape=(2, 1, 2), num_classes=2, mean=(0.5, 0.25), std=(0.5, 0.25))
    a = Fixed(torch.nn.Linear(1, 1), task)
    x = torch.tensor([[[[-3.0, 0.5]], [[-3.0, 4.0]]]]).expand(2, 3, 2, 1, 2)  # (R, B, C, H, W)
    boxed = a.box(x)
    # channel 0 spans [-1, 1], channel 1 [-1, 3]
    assert boxed.shape == x.shape
    assert boxed[1, 2].tolist() == [[[-1.0, 0.5]], [[-1.0, 3.0]]]
    assert torch.equal(a.box(x[0, 0]), boxed[0, 0])  # any leading dimensions


def test_finish_scores_the_boxed_candidates_and_returns_the_best_chain(tiny_setup):
    task, model, images, labels, update = tiny_setup
    a = Fixed(model, task)
    sim = UpdateSimulator(model, update)
    g = torch.Generator().manual_seed(3)
    true = task.normalize(images)
    x = torch.stack([torch.full_like(true, float("nan")), true * 5, true, torch.randn(true.shape, generator=g)])
    y = torch.stack([labels, labels, labels, torch.tensor([0, 0])])
    trace = [torch.tensor([4.0, 3.0, 2.0, 1.0]), 7.0, torch.tensor([0.5, 0.25, 0.125, 0.0625])]
    target = list(update.tensors)
    r = a.finish(sim, x, y, target, torch.tensor([4, 4]), "cosine", trace, steps=3)
    assert r.evaluations == sim.evaluations == 4
    assert r.best_restart == 2 and r.method == "fixed"
    assert r.restart_scores[0] == float("inf") and len(r.restart_scores) == 4
    boxed = a.box(true * 5)  # chain 1 is scored after boxing
    want1 = cosine_distance(sim(boxed[None], labels[None]), target)
    assert r.restart_scores[1] == pytest.approx(float(want1), rel=1e-5)
    assert r.score == r.restart_scores[2] == min(r.restart_scores) and r.score == pytest.approx(0, abs=1e-5)
    torch.testing.assert_close(r.images, images)
    assert r.labels.tolist() == [1, 3]  # chain-wise labels: the best chain's
    assert r.trace == [2.0, 7.0, 0.125] and r.extras == {"steps": 3}
    soft = torch.nn.functional.one_hot(y, 5).float()  # (R, B, classes): the given labels are reported
    r2 = a.finish(UpdateSimulator(model, update), x, soft, target, torch.tensor([1, 3]), "cosine", [])
    assert r2.labels.tolist() == [1, 3] and r2.best_restart == 2 and r2.trace == []
    r3 = a.finish(UpdateSimulator(model, update), x[1:2], y[1:2], target, labels, "cosine", [])
    want = task.denormalize(true * 5).clamp(0, 1)  # boxing is clamping to [0, 1] in image space
    assert (want == 0).any() and (want == 1).any()
    torch.testing.assert_close(r3.images, want)


def test_finish_clamps_rounding_outside_the_unit_range():
    """Denormalising the box edges rounds outside [0, 1] for this mean and std; the returned images are in [0, 1]."""
    task = FLTask(image_shape=(1, 1, 2), num_classes=2, mean=(0.08,), std=(0.29,))
    a = Fixed(torch.nn.Linear(1, 1), task)
    lo, hi = task.box(torch.zeros(1, 1, 2, dtype=torch.float64))
    assert (task.denormalize(lo) < 0).all() and (task.denormalize(hi) > 1).all()

    class Sim:
        evaluations = 1

        def __call__(self, x, y):
            return [x.flatten(1)]

    x = torch.tensor([-9.0, 9.0], dtype=torch.float64).view(1, 1, 1, 1, 2)  # below and above the box
    r = a.finish(Sim(), x, torch.zeros(1, 1), [torch.ones(2)], None, "l2", [])
    assert r.images.flatten().tolist() == [0.0, 1.0]


def test_call_checks_the_update_labels_and_budget(tiny_setup):
    task, model, images, labels, update = tiny_setup
    a = Fixed(model, task, budget=10, restarts=1)
    a.used = 10  # exactly the budget
    t0 = time.perf_counter()
    r = a(update)
    wall = time.perf_counter() - t0
    assert 0 <= r.seconds <= wall and r.config == asdict(a.config) and r.config["budget"] == 10
    assert a.seen_labels.tolist() == [1, 3]
    assert a(update, torch.tensor([0, 4])).labels.tolist() == [0, 4]  # the task's first and last classes
    a.used = 11
    with pytest.raises(RuntimeError) as e:
        a(update)
    assert str(e.value) == "fixed used 11 evaluations, over its budget"
    a.used = 0
    with pytest.raises(ValueError) as e:
        a(update.with_tensors(update.tensors, num_samples=None))
    assert str(e.value) == "the batch size is not disclosed by the update (ThreatModel.batch_size)"
    with pytest.raises(ValueError) as e:
        a(update, torch.tensor([1, 2, 3]))
    assert str(e.value) == "3 labels for a batch of 2"
    for bad in ([-1, 2], [1, 5]):
        with pytest.raises(ValueError) as e:
            a(update, torch.tensor(bad))
        assert str(e.value) == f"labels must lie in the task's classes [0, 5), got {bad}"
    with pytest.raises(ValueError, match="shape"):
        a(update.with_tensors([t[..., :1] if t.dim() > 1 else t for t in update.tensors]))


def test_generative_attacks_freeze_the_generator_and_map_labels(tiny_setup):
    from gifd.generators import make_generator

    task, model, _, _, _ = tiny_setup
    G = make_generator("dcgan", num_classes=5).train()
    a = GIFD(model, task, generator=G, gen_labels=lambda y: (y + 1) % 5)
    assert a.G is G and not G.training and not any(p.requires_grad for p in G.parameters())
    assert a.gan_labels(torch.tensor([4, 0])).tolist() == [0, 1]
    assert GIFD(model, task, generator=G).gan_labels(torch.tensor([4, 0])).tolist() == [4, 0]
    for cls in (GGL, GIAS):
        with pytest.raises(ValueError, match="unknown gradient distance 'l7'"):
            cls(model, task, generator=G, distance="l7")
