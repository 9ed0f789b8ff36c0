"""JupyterLab controls on top of the static figures (headless runs never need them)."""

from __future__ import annotations

__all__ = ["explore", "explore_audit", "title_of"]


def title_of(result, stage: int) -> str:
    """The explorer's title for ``result`` at ``stage`` (GIFD: that stage's score and restart scores)."""
    stages = result.extras.get("stage_images")
    score = result.extras["stage_scores"][stage] if stages else result.score
    restarts = result.extras["stage_restart_scores"][stage] if stages else result.restart_scores
    where = f"stage {stage}: " if stages else ""
    return f"{where}gradient distance {score:.4f}; restart scores {[round(s, 4) for s in restarts]}"


def _explorer(methods: list[str], view, stages, pick):
    """A method menu (first), the ``view`` control, a "GIFD stage" slider and the figure: ``stages(method, view)``
    gives the number of stages (1: the slider is disabled), ``pick(method, view, stage)`` gives ``(truth, shown,
    title)``."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from .plots import image_grid

    method = widgets.Dropdown(options=methods, description="method")
    stage = widgets.IntSlider(0, 0, 0, description="GIFD stage")
    out = widgets.Output()

    def draw(*_):
        n = stages(method.value, view.value)
        stage.max = max(n - 1, 0)  # before reading the (clamped) value
        truth, shown, title = pick(method.value, view.value, stage.value)
        stage.disabled = n < 2
        with out:
            out.clear_output(wait=True)
            image_grid([truth, shown], row_titles=["truth", method.value], title=title)
            plt.show()

    for w in (method, view, stage):
        w.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([method, view, stage]), out])


def explore(comparison):
    """Browse a :class:`~gifd.experiment.Comparison`: method, batch, and for GIFD the stage (the image each
    stage ended with, its gradient distance, and the best restart). Returns the ipywidgets box."""
    import ipywidgets as widgets

    batches = max(len(v) for v in comparison.attack_results.values())
    batch = widgets.IntSlider(0, 0, max(batches - 1, 0), description="batch")
    bs = comparison.results["params"]["batch_size"]

    def stages(method, b):
        return len(comparison.attack_results[method][b].extras.get("stage_images") or [0])

    def pick(method, b, stage):
        result = comparison.attack_results[method][b]
        shown = result.extras["stage_images"][stage] if "stage_images" in result.extras else result.images
        return comparison.data.images[b * bs : (b + 1) * bs], shown.cpu(), title_of(result, stage)

    return _explorer(list(comparison.attack_results), batch, stages, pick)


def explore_audit(audit):
    """Browse a :class:`~gifd.flower_audit.FlowerAudit`: method, the audited update (simulation, client, round), and for
    GIFD the stage (the image each stage ended with and its gradient distance), each against the client's private
    images. Returns the ipywidgets box."""
    import ipywidgets as widgets

    updates = list(dict.fromkeys(key[:3] for key in audit.reconstructions))
    if not updates:
        raise ValueError("the audit captured nothing to browse (see the skipped clients)")
    view = widgets.Dropdown(options=[(f"{s}, client {c}, round {r}", (s, c, r)) for s, c, r in updates],
                            description="update")  # fmt: skip
    psnr: dict = {}
    for r in audit.results["rows"]:
        psnr.setdefault((r["setting"], r["client"], r["round"], r["method"]), []).append(r["psnr"])

    def stages(method, update):
        return len(audit.stages.get((*update, method), ([0], None))[0])

    def pick(method, update, stage):
        key = (*update, method)
        images, scores = audit.stages.get(key, (None, None))
        vals = psnr.get(key, [])
        title = f"{update[0]}, client {update[1]}, round {update[2]}: mean PSNR {sum(vals) / max(len(vals), 1):.1f} dB"
        if images:
            title = f"stage {stage}: gradient distance {scores[stage]:.4f}; " + title.split(": ", 1)[0]
        shown = images[stage] if images else audit.reconstructions[key]
        return audit.truth[update[:2]], shown, title

    methods = list(dict.fromkeys(key[3] for key in audit.reconstructions))
    return _explorer(methods, view, stages, pick)
