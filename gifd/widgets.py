"""JupyterLab controls on top of the static figures (headless runs never need them)."""

from __future__ import annotations

__all__ = ["explore", "title_of"]


def title_of(result, stage: int) -> str:
    """The explorer's title for ``result`` at ``stage`` (GIFD: that stage's score and restart scores)."""
    stages = result.extras.get("stage_images")
    score = result.extras["stage_scores"][stage] if stages else result.score
    restarts = result.extras["stage_restart_scores"][stage] if stages else result.restart_scores
    where = f"stage {stage}: " if stages else ""
    return f"{where}gradient distance {score:.4f}; restart scores {[round(s, 4) for s in restarts]}"


def explore(comparison):
    """Browse a :class:`~gifd.experiment.Comparison`: method, batch, and for GIFD the stage (the image each
    stage ended with, its gradient distance, and the best restart). Returns the ipywidgets box."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    from .plots import image_grid

    methods = list(comparison.attack_results)
    batches = max(len(v) for v in comparison.attack_results.values())
    method = widgets.Dropdown(options=methods, description="method")
    batch = widgets.IntSlider(0, 0, max(batches - 1, 0), description="batch")
    stage = widgets.IntSlider(0, 0, 0, description="GIFD stage")
    out = widgets.Output()
    bs = comparison.results["params"]["batch_size"]

    def draw(*_):
        result = comparison.attack_results[method.value][batch.value]
        stages = result.extras.get("stage_images")
        stage.max = len(stages) - 1 if stages else 0
        stage.disabled = not stages
        truth = comparison.data.images[batch.value * bs : (batch.value + 1) * bs]
        shown = stages[stage.value] if stages else result.images
        with out:
            out.clear_output(wait=True)
            image_grid([truth, shown.cpu()], row_titles=["truth", method.value], title=title_of(result, stage.value))
            plt.show()

    for w in (method, batch, stage):
        w.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([method, batch, stage]), out])
