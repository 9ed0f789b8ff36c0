#!/bin/bash
# The long CPU runs still owed by the open issues, in order, as two lanes (one per core, one thread each; every
# step resumes from its attack cache, records or tuning folders, so a lane restarted on a fresh machine skips
# what is committed). Commit finished attack files as they appear (git add figures/<run>/attacks).
#
#   nohup bash tools/long_runs.sh a > build/lane_a.log 2>&1 &     # the fair comparison, then batch sizes
#   nohup bash tools/long_runs.sh b > build/lane_b.log 2>&1 &     # the 64x64 prior's quality and tuning, then defenses
#   nohup bash tools/long_runs.sh c > build/lane_c.log 2>&1 &     # the 64x64 comparisons (after the tuning's winners)
#   nohup bash tools/long_runs.sh r > build/lane_r.log 2>&1 &     # lane a's 01 runs from their last batch (2nd core)
#
# PY overrides the interpreter. Each step's start, end and exit status go to build/long_runs.log.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
TIN=../shared/gifd_data/tinyimagenet_rangeetpan
mkdir -p build
step() { echo "[$1] start $(date -Is): ${*:2}" >> build/long_runs.log; "${@:2}"; echo "[$1] end rc=$? $(date -Is)" >> build/long_runs.log; }
figure() { step "$LANE" "$PY" -m gifd.reproduce figures --only "$1"; }
LANE=${1:?usage: bash tools/long_runs.sh a|b|c|r}
case "$LANE" in
  a)  # issue 10 (16 images, then the K ablation and the budget curve), then issue 11's batch sizes and FedAvg
      for run in 01_in_distribution_cifar10_16 01_k_ablation 01_budget_curve 05_batch_size_cifar10 05_fedavg_cifar10; do
          figure "$run"
      done ;;
  r)  # a second core on lane a's runs that tools/run_entry.py takes, started beside lane a: each run attacked from
      # its last batch into the same attack cache, so the two lanes meet in the middle and lane a finds these there
      for run in 01_in_distribution_cifar10_16 01_k_ablation 01_budget_curve; do
          step r "$PY" tools/run_entry.py "$run" --set batch_order='"reverse"' --set "out_dir=\"build/reverse/$run\"" \
              --set "cache_dir=\"figures/$run/attacks\""
      done ;;
  b)  # issue 13's prior quality and the tuning for the prior, then issue 11's defenses
      grep -q projection_psnr gifd/priors/tinyimagenet64_dcgan.json \
          || step b "$PY" -m gifd.generators.dcgan64 quality --data "$TIN/tiny_imagenet_val_wnids_words.tar.gz"
      DATA="$TIN/tiny_imagenet_train_wnids_words.tar.gz" TUNE_ARGS="--dataset tinyimagenet --generator tinyimagenet64" \
          step b bash tools/tune_all.sh gifd gias ggl ig
      for run in 04_defenses_reference 04_strength_curves 04_dpsgd; do
          figure "$run"
      done ;;
  c)  # issue 13's three 64x64 runs: only once the winners of the 64x64 tuning are in gifd/presets.py TUNED
      "$PY" -c 'from gifd.presets import TUNED; assert {"gifd@dcgan64", "gias@dcgan64", "ggl@dcgan64"} <= set(TUNED)' \
          2> /dev/null && [ -f figures/tuning_ig_tinyimagenet/results.json ] \
          || { echo "the 64x64 tuning is unfinished (TUNED needs gifd, gias and ggl @dcgan64, and" \
                    "figures/tuning_ig_tinyimagenet must exist): finish lane b's tuning and copy its winners" >&2; exit 2; }
      for run in 01_in_distribution_tinyimagenet64 02_ood_tinyimagenet64_cifar10prior \
                 03_label_mapping_cifar10_tinyimagenet64; do
          figure "$run"
      done ;;
  *)  echo "unknown lane $LANE (a, b, c or r)" >&2; exit 2 ;;
esac
