#!/bin/bash
# The tuning runs of every method (tools/tune.py), one after another on one core; resumable (each configuration
# is cached under figures/tuning_<method>[_<generator family>]/<name>/attacks). Usage: bash tools/tune_all.sh [methods...]
# DATA overrides the CIFAR-10 archive; PY the interpreter; TUNE_ARGS adds options to every tools/tune.py call, e.g.
#   DATA=../shared/gifd_data/tinyimagenet_rangeetpan/tiny_imagenet_train_wnids_words.tar.gz \
#   TUNE_ARGS="--dataset tinyimagenet --generator tinyimagenet64" bash tools/tune_all.sh gifd gias ggl ig
set -u
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/gifd_data/cifar10_yoongikim/cifar10_jpg_q75_train_test.tar.gz}
PY=${PY:-.venv/bin/python}
mkdir -p build
for m in ${*:-ig gifd gias ggl gi}; do
  # shellcheck disable=SC2086  # TUNE_ARGS is a list of options
  OMP_NUM_THREADS=1 "$PY" tools/tune.py "$m" --data "$DATA" ${TUNE_ARGS:-} >> "build/tune_$m.log" 2>&1
  echo "$m ${TUNE_ARGS:-} done rc=$? $(date)" >> build/tune_all.log
done
