#!/bin/bash
# The tuning runs of every method (tools/tune.py), one after another on one core; resumable (each configuration
# is cached under figures/tuning_<method>/<name>/attacks). Usage: bash tools/tune_all.sh [methods...]
# DATA overrides the CIFAR-10 archive; PY the interpreter.
set -u
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/gifd_data/cifar10_yoongikim/cifar10_jpg_q75_train_test.tar.gz}
PY=${PY:-.venv/bin/python}
mkdir -p build
for m in ${*:-ig gifd gias ggl gi}; do
  OMP_NUM_THREADS=1 "$PY" tools/tune.py "$m" --data "$DATA" >> "build/tune_$m.log" 2>&1
  echo "$m done rc=$? $(date)" >> build/tune_all.log
done
