"""Kernel tests of gifd.attacks.gifd on a tiny float64 staged generator and victim: GIFD against a plain
re-implementation of its algorithm (one chain at a time), its configuration rules, and its edge cases; small enough
for mutation testing (make mutants)."""

import pytest
import torch
from torch import nn

from gifd.attacks import GIFD, GIFDConfig
from gifd.attacks.gan import chain_states, ilo_lr, project_l1_ball, to_victim
from gifd.fl import FLTask, client_update
from gifd.generators.base import StagedGenerator
from gifd.matching import UpdateSimulator, gradient_distance, image_l2, total_variation

TASK = FLTask(image_shape=(3, 4, 4), num_classes=5, mean=(0.5,) * 3, std=(0.25,) * 3)


class Tiny(StagedGenerator):
    """``num_stages`` stages of 6 features; with ``noise`` it is StyleGAN2-like: the latent ``z`` and a noise map
    ``noise_0`` act on every stage's image and stay variables at every stage (``("z", "noise_0", "h")``)."""

    num_classes = 5
    image_shape = (3, 4, 4)

    def __init__(self, num_stages: int = 3, noise: bool = False, nan_from: int | None = None):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.num_stages, self.noise, self.nan_from = num_stages, noise, nan_from
        self.inp = nn.Linear(4 + 5, 6)
        self.blocks = nn.ModuleList(nn.Linear(6, 6) for _ in range(num_stages - 1))
        self.head = nn.Linear(6, 48)
        self.zmap = nn.Linear(4, 48)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.6)
        self.double()

    def initial_state(self, labels, generator=None):
        n = labels.shape[0]
        state = {"z": torch.randn((n, 4), generator=generator, dtype=torch.float64), "y": self.conditioning(labels)}
        if self.noise:
            state["noise_0"] = torch.randn((n, 6), generator=generator, dtype=torch.float64)
        return state

    def render(self, stage, state):
        h = self.inp(torch.cat([state["z"], state["y"].double()], 1)) if stage == 0 else state["h"]
        for block in self.blocks[stage:]:
            h = torch.tanh(block(h))
        out = self.head(h)
        if self.noise:
            out = out + self.head(0.3 * state["noise_0"]) + 0.3 * self.zmap(state["z"])
        img = torch.tanh(out).view(-1, 3, 4, 4)
        return img + float("nan") if self.nan_from is not None and stage >= self.nan_from else img

    def advance(self, stage, state):
        with torch.no_grad():
            x = self.inp(torch.cat([state["z"], state["y"].double()], 1)) if stage == 0 else state["h"]
            return {**{k: v.detach() for k, v in state.items()}, "h": torch.tanh(self.blocks[stage](x))}

    def variables(self, stage):
        if not self.noise:
            return super().variables(stage)
        return ("z", "noise_0") if stage == 0 else ("z", "noise_0", "h")


class TinyDCGAN(Tiny):
    pass


class TinyDCGAN64(Tiny):
    pass


class TinyBigGANDCGAN(Tiny):  # both names: the longest, "biggan", wins
    pass


@pytest.fixture
def victim():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.Tanh(), nn.Linear(8, 5)).double()
    images = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.tensor([1, 3])
    return model, labels, client_update(model, TASK, images, labels)


def _norms(v):
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


def reference_gifd(G, model, update, labels, *, restarts, steps, last_stage, radii, lr, tv, l2, spherical,
                   spherical_all, project_latent, seed, distance, gen_labels=None):  # fmt: skip
    """GIFD written out plainly for one chain at a time: per chain and stage, the objective trace, the final
    gradient distance and images."""
    sim = UpdateSimulator(model, update)
    target = list(update.tensors)
    dist = gradient_distance(distance)
    y = labels[None]
    gl = labels if gen_labels is None else gen_labels(labels)
    chains = []
    for r in range(restarts):
        state = chain_states(G, gl, 1, seed + r)
        stages = []
        for stage in range(last_stage + 1):
            if stage:
                state = G.advance(stage - 1, state)
            names = G.variables(stage)
            var = {k: state[k].clone().requires_grad_(True) for k in names}
            start = {k: state[k].clone() for k in names}
            on_sphere = spherical and (stage == 0 or spherical_all)
            sph = [k for k in names if on_sphere and (k == "z" or k.startswith("noise_"))]
            ball = [k for k in names if k == "h" or (project_latent and (k == "z" or k in sph))]
            radius = radii[min(stage, len(radii) - 1)]
            opt = torch.optim.Adam(list(var.values()), lr=lr)
            trace = []
            for step in range(steps):
                opt.param_groups[0]["lr"] = ilo_lr((step + 0.5) / steps, lr)
                x = to_victim(G.render(stage, {**state, **var}), TASK, 1)
                obj = dist(sim(x, y), target) + tv * total_variation(x) + l2 * image_l2(x)
                opt.zero_grad()
                obj.sum().backward()
                opt.step()
                with torch.no_grad():
                    for k in sph:
                        var[k].mul_(_norms(start[k]) / _norms(var[k]))
                    for k in ball:
                        var[k].copy_(start[k] + project_l1_ball(var[k] - start[k], radius))
                trace.append(float(obj.detach()))
            state = {**state, **{k: v.detach() for k, v in var.items()}}
            with torch.no_grad():
                x = to_victim(G.render(stage, state), TASK, 1).clamp(-2, 2)  # the box of TASK
                score = float(dist(sim(x, y), target))
            end = {k: state[k] for k in names}
            stages.append({"trace": trace, "score": score, "images": TASK.denormalize(x[0]).clamp(0, 1),
                           "start": start, "end": end, "ball": ball, "sphere": sph})  # fmt: skip
        chains.append(stages)
    return chains


CONFIGS = {
    # the bundled prior's kind: spherical latent at stage 0, l1 balls on the feature maps from stage 1 on
    "dcgan-like": dict(noise=False, radii=(0.0, 0.3), spherical_all_stages=False, project_latent=False),
    # StyleGAN2-like: latent and noise on the sphere at every stage, and l1-projected around their stage start
    "stylegan2-like": dict(noise=True, radii=(0.2, 0.3, 0.25), spherical_all_stages=True, project_latent=True),
    # no sphere, latent projected: the latent is in the ball even at stage 0
    "no-sphere": dict(noise=True, radii=(0.2,), spherical_all_stages=False, project_latent=True, spherical=False),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_gifd_equals_the_plain_algorithm_chain_by_chain(victim, name):
    model, labels, update = victim
    cfg = dict(CONFIGS[name])
    G = Tiny(noise=cfg.pop("noise"))
    gen_labels = (lambda y: (y + 1) % 5) if name == "stylegan2-like" else None
    kw = dict(restarts=3, steps_per_stage=3, last_stage=2, lr=0.1, total_variation=0.05, image_l2=0.2, seed=4,
              distance="cosine" if name != "no-sphere" else "l2", spherical=True, budget=36)  # fmt: skip
    kw.update(cfg)
    # labels by Yin et al.'s rule, which recovers [1, 3] here (this Tanh victim's head breaks bias counts'
    # presence test); the reference is given the true labels
    attack = GIFD(model, TASK, generator=G, gen_labels=gen_labels, progress=False, label_strategy="yin", **kw)
    result = attack(update)
    ref = reference_gifd(G, model, update, labels, restarts=3, steps=3, last_stage=2, radii=kw["radii"], lr=0.1,
                         tv=0.05, l2=0.2, spherical=kw["spherical"], spherical_all=kw["spherical_all_stages"],
                         project_latent=kw["project_latent"], seed=4, distance=kw["distance"],
                         gen_labels=gen_labels)  # fmt: skip
    got = result.extras["stage_restart_scores"]
    assert len(got) == 3 and all(len(s) == 3 for s in got)
    for k in range(3):
        for r in range(3):
            assert got[k][r] == pytest.approx(ref[r][k]["score"], rel=1e-9, abs=1e-12), (k, r)
        best_r = min(range(3), key=lambda r: ref[r][k]["score"])
        torch.testing.assert_close(result.extras["stage_images"][k], ref[best_r][k]["images"], rtol=1e-9, atol=1e-12)
    flat = [(ref[r][k]["score"], k, r) for k in range(3) for r in range(3)]
    score, stage, restart = min(flat)
    assert (result.extras["best_stage"], result.best_restart) == (stage, restart)
    assert result.score == pytest.approx(score, rel=1e-9) and result.score == min(min(s) for s in got)
    assert result.restart_scores == got[stage]
    assert result.extras["stage_scores"] == [min(s) for s in got]
    torch.testing.assert_close(result.images, ref[restart][stage]["images"], rtol=1e-9, atol=1e-12)
    want_trace = [t for k in range(3) for t in ref[restart][k]["trace"]]
    assert result.trace == pytest.approx(want_trace, rel=1e-9, abs=1e-12)
    assert result.evaluations == 3 * 3 * (3 + 1) == 36
    assert result.labels.tolist() == labels.tolist() and result.method == "gifd"
    assert result.extras["steps_per_stage"] == 3 and result.extras["last_stage"] == 2
    assert result.extras["radii"] == [float(kw["radii"][min(k, len(kw["radii"]) - 1)]) for k in range(3)]
    # the constraints hold, and the balls bind in these settings (so the comparison above covers them)
    binding = set()
    for r in range(3):
        for k in range(3):
            st = ref[r][k]
            for v in st["ball"]:
                moved = (st["end"][v] - st["start"][v]).flatten(1).abs().sum(1)
                assert (moved <= result.extras["radii"][k] + 1e-9).all()
                if moved.max() > result.extras["radii"][k] - 1e-9:
                    binding.add(v)
            for v in set(st["sphere"]) - set(st["ball"]):  # the l1 projection comes after the sphere
                torch.testing.assert_close(_norms(st["end"][v]), _norms(st["start"][v]), rtol=1e-9, atol=0)
    assert binding == ({"h"} if name == "dcgan-like" else {"h", "z"} if name == "no-sphere" else {"h", "z", "noise_0"})


def test_gifd_moves_the_latent_off_the_sphere_without_the_spherical_constraint(victim):
    model, labels, update = victim
    ref = reference_gifd(Tiny(), model, update, labels, restarts=1, steps=3, last_stage=0, radii=(0.0,), lr=0.1,
                         tv=0.0, l2=0.0, spherical=False, spherical_all=False, project_latent=False, seed=0,
                         distance="cosine")  # fmt: skip
    start, end = ref[0][0]["start"]["z"], ref[0][0]["end"]["z"]
    assert (_norms(end) - _norms(start)).abs().max() > 1e-3  # so the sphere in the comparison above is real


def test_tied_stages_keep_the_earliest(victim):
    """At learning rate 0 nothing moves: every stage renders the same images, and the earliest stage is returned."""
    model, _, update = victim
    result = GIFD(model, TASK, generator=Tiny(), restarts=2, steps_per_stage=1, lr=0.0, radii=(0.0,), budget=12,
                  progress=False)(update)  # fmt: skip
    scores = result.extras["stage_scores"]
    assert len(scores) == 3 and scores[0] == scores[1] == scores[2]
    assert result.extras["best_stage"] == 0
    assert torch.equal(result.images, result.extras["stage_images"][0])


def test_gifd_returns_the_best_stage_when_later_stages_diverge(victim):
    model, _, update = victim
    result = GIFD(model, TASK, generator=Tiny(nan_from=1), restarts=2, steps_per_stage=1, budget=12,
                  progress=False)(update)  # fmt: skip
    assert result.extras["best_stage"] == 0 and result.extras["last_stage"] == 2
    assert result.extras["stage_restart_scores"][1] == [float("inf")] * 2
    assert result.score == min(result.extras["stage_restart_scores"][0]) < float("inf")
    assert torch.equal(result.images, result.extras["stage_images"][0])


def test_gifd_with_every_chain_diverged_returns_the_last_stage_scored_inf(victim):
    model, _, update = victim
    result = GIFD(model, TASK, generator=Tiny(nan_from=0), restarts=2, steps_per_stage=1, budget=12,
                  progress=False)(update)  # fmt: skip
    assert result.score == float("inf") and result.restart_scores == [float("inf")] * 2
    assert (result.extras["best_stage"], result.best_restart) == (2, 0)
    assert result.images is result.extras["stage_images"][2]
    assert len(result.trace) == 3 and all(t != t for t in result.trace)  # NaN objectives


def test_gifd_progress_bar_counts_every_step_of_every_chain(victim, monkeypatch):
    import gifd.attacks.gifd as gifd_module

    model, _, update = victim
    bars = []

    class Bar:
        def __init__(self, total, desc, enabled):
            self.total, self.desc, self.enabled, self.n = total, desc, enabled, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.n += n

    monkeypatch.setattr(gifd_module, "progress", Bar)
    GIFD(model, TASK, generator=Tiny(), restarts=2, steps_per_stage=2, budget=18, progress=False)(update)
    GIFD(model, TASK, generator=Tiny(), restarts=3, steps_per_stage=1, last_stage=1, budget=12)(update)
    assert [(b.total, b.n, b.desc, b.enabled) for b in bars] == [(12, 12, "gifd", False), (6, 6, "gifd", True)]


def test_gifd_configuration_follows_the_generators_preset():
    model = nn.Linear(1, 1)
    dc = GIFD(model, TASK, generator=TinyDCGAN(num_stages=5), budget=1000)
    assert dc.radii == (0, 1000, 1000, 1000) and dc.last_stage == 3
    assert not dc.spherical_all and not dc.project_latent
    assert dc.steps == 1000 // (4 * 4) - 1 == 61
    assert [dc.radius(k) for k in range(6)] == [0.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0]
    assert GIFD(model, TASK, generator=TinyDCGAN64(num_stages=6), budget=1000).last_stage == 4  # dcgan64, not dcgan
    big = GIFD(model, TASK, generator=TinyBigGANDCGAN(num_stages=12), budget=1000)
    assert big.last_stage == 9 and big.radii[:2] == (1000, 2000)
    assert GIFD(model, TASK, generator=TinyDCGAN(num_stages=3), budget=1000).last_stage == 2  # clipped to the last
    sg = GIFD(model, TASK, generator=Tiny(num_stages=6), preset="stylegan2", budget=1000)
    assert sg.spherical_all and sg.project_latent and sg.last_stage == 4
    assert sg.radius(4) == 5000.0 and sg.radius(20) == 8000.0
    mine = GIFD(model, TASK, generator=TinyDCGAN(num_stages=5), preset="stylegan2", radii=(7.0, 9.0), last_stage=1,
                spherical_all_stages=False, project_latent=False, budget=1000)  # fmt: skip
    assert mine.radii == (7.0, 9.0) and mine.last_stage == 1 and not mine.spherical_all and not mine.project_latent
    plain = GIFD(model, TASK, generator=Tiny(num_stages=4), budget=1000)  # no preset for this class name
    assert plain.radii == (0.0,) and plain.last_stage == 3 and not plain.spherical_all and not plain.project_latent
    assert plain.radius(3) == 0.0 and plain.steps == 1000 // 16 - 1
    forced = GIFD(model, TASK, generator=Tiny(num_stages=4), spherical_all_stages=True, project_latent=True)
    assert forced.spherical_all and forced.project_latent


def test_gifd_budget_and_stage_limits():
    model = nn.Linear(1, 1)
    G = Tiny(num_stages=3)
    cfg = GIFDConfig(budget=12, restarts=2, radii=(3.0,))
    given = GIFD(model, TASK, cfg, generator=G, seed=5)
    assert given.config is cfg and cfg.seed == 5 and given.steps == 1 and given.radii == (3.0,)
    assert GIFD(model, TASK, generator=G, restarts=2, budget=12).steps == 1  # the minimum: 2 x 3 x (1 + 1)
    assert GIFD(model, TASK, generator=G, restarts=2, budget=23).steps == 2  # 23 // 6 - 1
    assert GIFD(model, TASK, generator=G, restarts=2, budget=18, steps_per_stage=2).steps == 2  # exactly the budget
    with pytest.raises(ValueError) as e:
        GIFD(model, TASK, generator=G, restarts=2, budget=11)
    assert str(e.value) == (
        "a budget of 11 cannot cover 3 stages x 2 restarts; GIFD needs at least 12 (one step and one scoring pass each)"
    )
    with pytest.raises(ValueError, match="a budget of 17 cannot cover 3 stages x 2 restarts"):
        GIFD(model, TASK, generator=G, restarts=2, budget=17, steps_per_stage=2)
    assert GIFD(model, TASK, generator=G, restarts=2, budget=4, last_stage=0).last_stage == 0
    with pytest.raises(ValueError) as e:
        GIFD(model, TASK, generator=G, last_stage=-1)
    assert str(e.value) == "last_stage must be >= 0, got -1"
    with pytest.raises(ValueError) as e:
        GIFD(model, TASK, generator=G, preset="vqgan")
    assert str(e.value) == "unknown GIFD preset 'vqgan'; choose from ['biggan', 'dcgan', 'dcgan64', 'stylegan2']"
    with pytest.raises(ValueError, match="unknown gradient distance 'l3'"):
        GIFD(model, TASK, generator=G, distance="l3")
    with pytest.raises(ValueError, match="too small for 4 restarts"):
        GIFD(model, TASK, generator=G, budget=7)


class Saturated(Tiny):
    """Renders mostly exact -1 and 1 pixels: black and white, the edges of the victim's box."""

    def render(self, stage, state):
        return torch.tanh(100 * super().render(stage, state))


def test_gifd_images_are_clamped_to_the_unit_range_after_rounding(victim):
    model, labels, _ = victim
    task = FLTask(image_shape=(3, 4, 4), num_classes=5, mean=(0.08,) * 3, std=(0.29,) * 3)
    lo, hi = task.box(torch.zeros(3, 4, 4, dtype=torch.float64))
    assert (task.denormalize(hi) > 1).all() and (task.denormalize(lo) < 0).all()  # both edges round outside [0, 1]
    images = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    update = client_update(model, task, images, labels)
    result = GIFD(model, task, generator=Saturated(), restarts=2, steps_per_stage=1, budget=12, progress=False)(update)
    for stage in result.extras["stage_images"]:
        assert stage.min() == 0 and stage.max() == 1
