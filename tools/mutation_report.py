"""Write docs/mutation.md from mutmut's results: the score per kernel file and every surviving mutant with the reason
it is equivalent (``make mutants``; not in CI).

Usage (from the repository root, after ``mutmut run``)::

    mutmut results --all true > build/mutants.txt
    python tools/mutation_report.py build/mutants.txt [--out docs/mutation.md] [--seconds N]

Each surviving mutant must be listed in :data:`EQUIVALENT` with a fragment of its mutated line (checked against the
mutant's diff, so that a reason cannot silently move to another mutant when the code changes) and the reason it
cannot be told apart from the original. A survivor without a matching entry is reported under "Not explained" and
the exit status is 1.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the six kernel files, in order of importance
FILES = ["gifd/attacks/gan.py", "gifd/attacks/gifd.py", "gifd/matching.py", "gifd/labels.py", "gifd/defenses.py",
         "gifd/attacks/base.py"]  # fmt: skip

#: reasons shared by several mutants, by name; the name "one device" marks mutants that are equivalent only while
#: every tensor is on one device (the CPU here), counted apart in the report
SHARED: dict[str, str] = {
    "INF": 'float() ignores case: float("INF") is infinity too.',
    "one device": (
        "Equivalent on one device only: every tensor of these runs is on the CPU, where moving a tensor to the device "
        "of another one (or to None, or creating it on the default device) changes nothing; on a GPU the mutant would "
        "fail or mix devices. Only a GPU run can tell: tests/test_device.py (GIFD_TEST_DEVICE=cuda, "
        "tools/gpu_check.sh) runs the attacks, GIFD included, and a pruning job there; Soteria has no GPU test yet."
    ),
    "dead best": (
        "The initial stage and restart in `best` are never read: the first finite score replaces the whole tuple, and "
        "when no score is finite both are set explicitly."
    ),
    "seconds": "`seconds` is overwritten by Attack.__call__, which times the run, before any caller sees the result.",
    "last dim": "For the 2-D tensor here the default (last) dimension is dimension 1.",
    "promotion": (
        "Tensor.to(None) returns the tensor unchanged, and the arithmetic that follows promotes it to the same dtype "
        "with the same values (a boolean mask, an int64 count or a float32 sample against float64 is exact)."
    ),
    "int64": "torch.tensor of Python ints is int64 (torch.long) already.",
    "check size": "_check_size reads num_classes only for distinct labels, and None is false like False.",
    "zero grad": "Adam's step is the same whether the gradients were zeroed or set to None before backward.",
    "same size": (
        "Interpolating to the size the image already has returns it unchanged (PyTorch copies, bilinear and area "
        "alike; checked bit for bit), so resizing every time is only slower."
    ),
    "bilinear": (
        "Bilinear interpolation defaults to align_corners=False (without a warning), and area interpolation takes no "
        "such argument."
    ),
    "keep branch": (
        "Both branches compute the same threshold (NumPy's selection on the CPU, torch.kthvalue elsewhere; "
        "tests/test_kernels_defenses.py checks that they agree), so taking the other one changes only the speed."
    ),
    "order warning": (
        "The warnings filter matches its message case-insensitively, and no other warning is raised in this block "
        "(checked over noise multipliers 0.1-50, 1-3 steps, sample rates 0.01-1)."
    ),
    "no invalid": (
        "No invalid floating-point operation occurs in the accountant (checked with invalid='raise' over noise "
        "multipliers 0.1-50, 1-3 steps, sample rates 0.01-1), only log(0), which stays ignored."
    ),
    "integer ks": (
        "Integer ks (1..n) times the float mu promotes to the float dtype with the same values (exact below 2**24 "
        "entries per sample)."
    ),
    "uniform shift": (
        "Every present class gets exactly one such pick, so this adds the same constant to the bias gradient of every "
        "present class; the later argmin over present classes is unchanged (up to the rounding of exact ties)."
    ),
    "iDLG fallback": (
        "An unknown strategy name falls through to LLG, which for a batch of one picks the most negative row sum "
        "(negative rows first, the most negative first; else the smallest sum): exactly iDLG."
    ),
    "box ref": "FLTask.box reads only the dtype and device of its reference tensor.",
}
INF, CPU, DEAD_BEST, SECONDS, LAST_DIM, PROMOTE, LONG, SIZE = (
    "INF",
    "one device",
    "dead best",
    "seconds",
    "last dim",
    "promotion",
    "int64",
    "check size",
)
ZERO_GRAD, SAME_SIZE, BILINEAR, KEEP_BRANCH, ORDER_WARNING, NO_INVALID, INT_KS, UNIFORM_SHIFT = (
    "zero grad",
    "same size",
    "bilinear",
    "keep branch",
    "order warning",
    "no invalid",
    "integer ks",
    "uniform shift",
)
IDLG, BOX = "iDLG fallback", "box ref"

#: mutant name -> (fragment of the mutated line, reason it is equivalent)
EQUIVALENT: dict[str, tuple[str, str]] = {
    # gifd/attacks/gan.py
    "gifd.attacks.gan.x_to_victim__mutmut_7": ("if x.shape[+2:] != (h, w):",
                                               "for the 4-D generator output, shape[2:] is shape[-2:]"),
    "gifd.attacks.gan.x_to_victim__mutmut_8": ("if x.shape[-3:] != (h, w):", SAME_SIZE),
    "gifd.attacks.gan.x_to_victim__mutmut_27": ("x = F.interpolate(x, size=(h, w), mode=mode, )", BILINEAR),
    "gifd.attacks.gan.x_to_victim__mutmut_29": ('(mode == "area") or True', BILINEAR),
    "gifd.attacks.gan.x_project_l1_ball__mutmut_15": (
        "inside = absd.sum(1) < radius",
        "a sample exactly on the sphere projects onto itself: theta = (sum |d| - r) / (rho + 1) = 0"),
    "gifd.attacks.gan.x_project_l1_ball__mutmut_21": ("mu = torch.sort(absd, descending=True).values", LAST_DIM),
    "gifd.attacks.gan.x_project_l1_ball__mutmut_31": ("device=None, dtype=flat.dtype)", CPU),
    "gifd.attacks.gan.x_project_l1_ball__mutmut_35": ("ks = torch.arange(1, flat.shape[1] + 1, dtype=flat.dtype)", CPU),
    "gifd.attacks.gan.x_project_l1_ball__mutmut_32": (
        "device=flat.device, dtype=None)",
        INT_KS),
    "gifd.attacks.gan.x_project_l1_ball__mutmut_36": (
        "ks = torch.arange(1, flat.shape[1] + 1, device=flat.device, )",
        INT_KS),
    "gifd.attacks.gan.x_project_l1_ball__mutmut_43": (
        "cond = mu * ks >= (cumsum - radius)",
        "an index j with mu_j * j == cumsum_j - r gives theta_j = mu_j = theta_(j-1): the same threshold"),
    "gifd.attacks.gan.x_project_l1_ball__mutmut_64": (
        "(rho + 1).to(None)", "float divided by an int64 tensor is true division in the float dtype: the same theta"),
    # gifd/attacks/gifd.py
    "gifd.attacks.gifd.xǁGIFDǁ__init____mutmut_40": (
        'preset.get("last_stage", generator.num_stages + 1)',
        "the next line clips last_stage to generator.num_stages - 1"),
    "gifd.attacks.gifd.xǁGIFDǁ__init____mutmut_62": ("preset.get(name, None)", "bool(None) is False"),
    "gifd.attacks.gifd.xǁGIFDǁ__init____mutmut_64": ("preset.get(name, )", "bool(None) is False"),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_16": ("dev = None", CPU),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_18": ("state = {k: v.to(None)", CPU),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_27": ("self.gan_labels(labels).to(None)", CPU),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_33": ('best = (float("INF")', INF),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_34": ("None, +1, -1)", DEAD_BEST),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_35": ("None, -2, -1)", DEAD_BEST),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_36": ("None, -1, +1)", DEAD_BEST),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_37": ("None, -1, -2)", DEAD_BEST),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_96": (
        "opt = torch.optim.Adam(variables, )", "the learning rate is set from the ILO ramp before every step"),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_108": ("opt.zero_grad(set_to_none=None)", ZERO_GRAD),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_109": ("opt.zero_grad(set_to_none=False)", ZERO_GRAD),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_130": (
        "if cfg.total_variation >= 0:", "at weight 0 the term adds 0 * TV = 0 (TV of finite images is finite)"),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_136": (
        "if cfg.image_l2 >= 0:", "at weight 0 the term adds 0 * L2 = 0 (the norm of finite images is finite)"),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_186": ('nan=float("INF")', INF),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_217": ("seconds=None,", SECONDS),
    "gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_230": ("seconds=1.0,", SECONDS),
    "gifd.attacks.gifd.x__preset_name__mutmut_6": (
        "default=None)", "no preset is named None either: GIFD_PRESETS.get(None, {}) is the same {}"),
    "gifd.attacks.gifd.x__preset_name__mutmut_11": (
        'default="XXXX")', 'no preset is named "XXXX" either: GIFD_PRESETS.get("XXXX", {}) is the same {}'),
    # gifd/matching.py
    "gifd.matching.xǁUpdateSimulatorǁ__call____mutmut_13": (
        "if (self.train_bn) or True else self.buffers",
        "copying the buffers for one chain in eval mode too changes nothing: eval-mode BatchNorm only reads them"),
    "gifd.matching.x_cosine_distance__mutmut_39": (
        "nt = sum(wi * b.pow(2).sum(None)",
        "the flattened shared update has one row, so summing over everything is summing its row"),
    "gifd.matching.x_layer_cosine_distance__mutmut_28": (
        "b.norm(dim=None)", "the flattened shared update has one row, so its norm over everything is its row's"),
    "gifd.matching.x_masked_cosine_distance__mutmut_4": ("masks = [(t != 0).to(None)", PROMOTE),
    "gifd.matching.x_group_consistency__mutmut_5": (
        "centre = x.detach().mean(0, )", "without keepdim the centre broadcasts against every chain the same way"),
    "gifd.matching.x_group_consistency__mutmut_7": (
        "centre = x.detach().mean(0, keepdim=False)",
        "without keepdim the centre broadcasts against every chain the same way"),
    # gifd/labels.py
    "gifd.labels.x_llg__mutmut_2": ("_check_size(batch_size, None, distinct=False)", SIZE),
    "gifd.labels.x_llg__mutmut_3": ("_check_size(batch_size, num_classes, distinct=None)", SIZE),
    "gifd.labels.x_llg__mutmut_22": (
        "torch.where(s <= 0, s,", "row sums equal to 0 add 0 to the sum of the negative ones"),
    "gifd.labels.x_llg__mutmut_46": ("torch.tensor(labels, dtype=None)", LONG),
    "gifd.labels.x_llg__mutmut_48": ("torch.tensor(labels, )", LONG),
    "gifd.labels.x_bias_counts__mutmut_2": ("_check_size(batch_size, None, distinct=False)", SIZE),
    "gifd.labels.x_bias_counts__mutmut_3": ("_check_size(batch_size, num_classes, distinct=None)", SIZE),
    "gifd.labels.x_bias_counts__mutmut_35": ("g[c] -= 1.0 / batch_size", UNIFORM_SHIFT),
    "gifd.labels.x_bias_counts__mutmut_36": ("g[c] += 1.0 * batch_size", UNIFORM_SHIFT),
    "gifd.labels.x_bias_counts__mutmut_37": ("g[c] += 2.0 / batch_size", UNIFORM_SHIFT),
    "gifd.labels.x_bias_counts__mutmut_56": ('torch.full_like(g, float("INF"))', INF),
    "gifd.labels.x_bias_counts__mutmut_64": ("torch.tensor(labels, dtype=None)", LONG),
    "gifd.labels.x_bias_counts__mutmut_66": ("torch.tensor(labels, )", LONG),
    "gifd.labels.x_infer_labels__mutmut_17": (
        'strategy = "XXidlgXX"', IDLG),
    "gifd.labels.x_infer_labels__mutmut_18": (
        'strategy = "IDLG"', IDLG),
    # gifd/defenses.py
    "gifd.defenses.x_keep_mask__mutmut_4": ('if mag.device.type != "cpu":', KEEP_BRANCH),
    "gifd.defenses.x_keep_mask__mutmut_5": ('if mag.device.type == "XXcpuXX":', KEEP_BRANCH),
    "gifd.defenses.x_keep_mask__mutmut_6": ('if mag.device.type == "CPU":', KEEP_BRANCH),
    "gifd.defenses.x_keep_mask__mutmut_13": ("np.partition(mag.contiguous().numpy(), n - keep, )", LAST_DIM),
    "gifd.defenses.x_keep_mask__mutmut_29": ("mag.kthvalue(n - keep + 1, keepdim=True)", LAST_DIM),
    "gifd.defenses.x_prune__mutmut_37": ("keep_mask(flat.abs(), keep).to(None)", PROMOTE),
    "gifd.defenses.x_soteria_mask__mutmut_26": ("eye = torch.eye(F_, device=None)", CPU),
    "gifd.defenses.x_soteria_mask__mutmut_28": ("eye = torch.eye(F_, )", CPU),
    "gifd.defenses.x_soteria_mask__mutmut_56": ("mask = torch.ones(F_, device=None)", CPU),
    "gifd.defenses.x_soteria_mask__mutmut_58": ("mask = torch.ones(F_, )", CPU),
    "gifd.defenses.x_soteria_mask__mutmut_48": (
        "r.detach().abs().t() - 1e-12",
        "equivalent in floating point: it moves each |r_f| by 2e-12, which reorders no scores unless a feature's "
        "|r_f| is within 1e-12 of 0 while its gradient is not 0 (a zero feature of a ReLU has a zero gradient: "
        "score 0 either way)"),
    "gifd.defenses.x__dpsgd__mutmut_11": (
        "xi[None], yi[None]), )(x, y)", "vmap's default in_dims is 0 for every argument"),
    "gifd.defenses.x_dp_epsilon__mutmut_22": ('return float("INF")', INF),
    "gifd.defenses.x_dp_epsilon__mutmut_32": ('np.errstate(divide="ignore", invalid=None)', NO_INVALID),
    "gifd.defenses.x_dp_epsilon__mutmut_34": ('np.errstate(divide="ignore", )', NO_INVALID),
    "gifd.defenses.x_dp_epsilon__mutmut_42": ('warnings.filterwarnings("ignore", )', ORDER_WARNING),
    "gifd.defenses.x_dp_epsilon__mutmut_46": ('message="optimal order"', ORDER_WARNING),
    "gifd.defenses.x_dp_epsilon__mutmut_47": ('message="OPTIMAL ORDER"', ORDER_WARNING),
    "gifd.defenses.x_defend__mutmut_37": ("lap.sample(g.shape).to(None)", CPU),
    "gifd.defenses.x_defend__mutmut_125": ('"epsilon": dp_epsilon(s, )', "dp_epsilon's default delta is DP_DELTA"),
    "gifd.defenses.x_adaptive_transform__mutmut_42": ("any(dim=0).to(None)", PROMOTE),
    # gifd/attacks/base.py
    "gifd.attacks.base.xǁAttackǁlabels_for__mutmut_7": (
        "infer_labels(update, self.task.num_classes, None,",
        "infer_labels falls back to update.num_samples when no batch size is given"),
    "gifd.attacks.base.xǁAttackǁlabels_for__mutmut_13": ("return labels.long().to(None)", CPU),
    "gifd.attacks.base.xǁAttackǁlabels_for__mutmut_14": ("update.tensors[1].device", CPU),
    "gifd.attacks.base.xǁAttackǁbox__mutmut_5": (
        "self.task.box(x.reshape(-1, )[0])", BOX),
    "gifd.attacks.base.xǁAttackǁbox__mutmut_8": (
        "*x.shape[+3:]", BOX),
    "gifd.attacks.base.xǁAttackǁbox__mutmut_9": (
        "*x.shape[-4:]", BOX),
    "gifd.attacks.base.xǁAttackǁfinish__mutmut_20": ('nan=float("INF")', INF),
    "gifd.attacks.base.xǁAttackǁfinish__mutmut_35": ("seconds=None,", SECONDS),
    "gifd.attacks.base.xǁAttackǁfinish__mutmut_56": ("seconds=1.0,", SECONDS),
    "gifd.attacks.base.xǁGenerativeAttackǁgan_labels__mutmut_5": ("fn(labels).to(None)", CPU),
}  # fmt: skip

DETECTED = ("killed", "timeout")
LINE = re.compile(r"^\s*(?P<name>\S+): (?P<status>.+?)\s*$")


def file_of(name: str) -> str:
    """``gifd.attacks.gan.x_to_victim__mutmut_3`` -> ``gifd/attacks/gan.py``."""
    module = name.split(".x_")[0].split(".xǁ")[0]
    return module.replace(".", "/") + ".py"


def read_results(path: Path) -> dict[str, str]:
    results = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = LINE.match(line)
        if m:
            results[m["name"]] = m["status"]
    return results


def mutated_lines(name: str, file: str) -> list[str]:
    """The changed lines of a mutant (``-`` original, ``+`` mutant), from mutmut's mutants/ directory."""
    try:
        from mutmut.mutation.diff_apply import get_diff_for_mutant

        diff = get_diff_for_mutant(name, path=file)
    except Exception as e:  # noqa: BLE001 - the report still lists the mutant
        return [f"? (no diff: {type(e).__name__})"]
    return [ln for ln in diff.splitlines() if ln[:1] in "-+" and not ln.startswith(("---", "+++"))]


def _md(code: str) -> str:
    return "`" + code.strip().replace("`", "'").replace("|", "\\|") + "`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def selection() -> list[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return cfg.get("pytest_add_cli_args_test_selection", [])


def _selection_lines(args: list[str]) -> list[str]:
    lines, deselect = [], False
    for a in args:
        if a == "--deselect":
            deselect = True
            continue
        lines.append(f"- left out: {_md(a)}" if deselect else f"- {_md(a)}")
        deselect = False
    return lines


def _anchor(tag: str) -> str:
    return "reason-" + re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")


def report(results: dict[str, str], seconds: float | None, version: str) -> tuple[str, list[str]]:
    by_file: dict[str, Counter] = {f: Counter() for f in FILES}
    survivors: dict[str, list[tuple[str, list[str], str | None]]] = {f: [] for f in FILES}
    unexplained = []
    for name, status in sorted(results.items(), key=lambda kv: _natural(kv[0])):
        file = file_of(name)
        by_file.setdefault(file, Counter())[status] += 1
        if status in DETECTED:
            continue
        lines = mutated_lines(name, file)
        entry = EQUIVALENT.get(name)
        reason = None
        if entry and status == "survived" and any(entry[0] in ln for ln in lines if ln.startswith("+")):
            reason = entry[1]
            by_file[file]["one device" if reason == CPU else "equivalent"] += 1
        else:
            unexplained.append(name)
        survivors.setdefault(file, []).append((name, lines, reason if status == "survived" else f"**{status}**"))

    out = [
        "# Mutation testing of the kernels",
        "",
        f"Generated by `make mutants` (mutmut {version}, `tools/mutation_report.py`) on {date.today().isoformat()}"
        + (f", in {seconds / 60:.0f} minutes on one core" if seconds else "")
        + "; not part of CI. Do not edit by hand: the reasons for the equivalent mutants live in "
        "`tools/mutation_report.py`, which fails when a surviving mutant has none.",
        "",
        "mutmut mutates one operator, constant, argument or assignment at a time in the six kernel files and runs, for "
        "each mutant, the selected tests that call the mutated function (fastest first, stopping at the first "
        "failure). A mutant is *killed* when a test fails, *timeout* when the tests run far past their recorded "
        "time (both count as detected), and *survived* when every test passes. Every survivor below is equivalent "
        "to the original code (the reason is given), some of them only while every tensor is on one device (the CPU "
        "here; counted apart).",
        "",
        "Test selection (`[tool.mutmut]` in `pyproject.toml`): the kernel tests (`tests/test_kernels_*.py`, small "
        "float64 models, about 16 s in all) and the fast unit tests of the same code; the end-to-end attack runs "
        "(ResNet-18 label tests, the GAN attacks on the DCGAN prior, the notebook parameters) stay in the suite and "
        "in CI but out of the selection:",
        "",
        *_selection_lines(selection()),
        "",
        "## Score per file",
        "",
        "| file | mutants | killed | timeout | survived: equivalent | survived: equivalent on one device | not run "
        "| score |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = Counter()
    for file in by_file:
        c = by_file[file]
        total.update(c)
        out.append(_row(f"`{file}`", c))
    out.append(_row("all six", total))
    out += [
        "",
        "*score*: detected (killed + timeout) over the mutants that are not equivalent (on one device: the CPU); "
        "*not run*: mutants that no selected test reaches, or left by an interrupted run. A survivor without a "
        "reason would be listed under *Not explained* (there are none).",
        "",
        "## Surviving mutants",
        "",
    ]
    for file, items in survivors.items():
        if not items:
            continue
        out += [f"### `{file}`", "", "| mutant | change | why it is equivalent |", "|---|---|---|"]
        for name, lines, reason in items:
            change = "<br>".join(_md(ln) for ln in lines) or "?"
            if reason in SHARED:
                why = f"[{reason}](#{_anchor(reason)})"
            else:
                why = _cell(reason) if reason else "**not explained**"
            out.append(f"| {_short(name)} | {change} | {why} |")
        out.append("")
    out += ["## Shared reasons", ""]
    for tag, text in SHARED.items():
        out += [f'<a id="{_anchor(tag)}"></a>**{tag}**: {text}', ""]
    out += ["## Not explained", "", "\n".join(f"- {n}" for n in unexplained) if unexplained else "None.", ""]
    return "\n".join(out), unexplained


def _row(file: str, c: Counter) -> str:
    n = sum(v for k, v in c.items() if k not in ("equivalent", "one device"))
    detected = c["killed"] + c["timeout"]
    equivalent, device = c["equivalent"], c["one device"]
    not_run = n - detected - c["survived"]
    score = f"{100 * detected / (n - equivalent - device):.1f} %" if n - equivalent - device else "-"
    unexplained = c["survived"] - equivalent - device
    eq = f"{equivalent} (+{unexplained} not explained)" if unexplained else str(equivalent)
    return f"| {file} | {n} | {c['killed']} | {c['timeout']} | {eq} | {device} | {not_run} | {score} |"


def _short(name: str) -> str:
    """``gifd.attacks.gifd.xǁGIFDǁ_run__mutmut_16`` -> ``GIFD._run #16``."""
    func, _, number = name.split(".")[-1].rpartition("__mutmut_")
    func = func[2:].replace("ǁ", ".")  # x_name or xǁClassǁmethod
    return f"{func} #{number}"


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="output of `mutmut results --all true`")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "mutation.md")
    ap.add_argument("--seconds", type=float, default=None, help="duration of the mutmut run")
    args = ap.parse_args(argv)
    try:
        from importlib.metadata import version

        v = version("mutmut")
    except Exception:  # noqa: BLE001
        v = "?"
    text, unexplained = report(read_results(args.results), args.seconds, v)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}; {len(unexplained)} surviving mutants not explained")
    results = read_results(args.results)
    stale = sorted(n for n in EQUIVALENT if n in results and results[n] != "survived")
    for name in stale:  # a reason for a mutant that is now killed: harmless, but the list should be tidied
        print("  listed as equivalent but", results[name] + ":", name)
    for name in unexplained:
        print("  not explained:", name)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
