"""Auditing a real Flower federation: the server captures what its clients send (the experiment that attacks it,
``06_flower_audit``, is :mod:`gifd.flower_audit`).

An honest-but-curious Flower server wraps its strategy (FedAvg by default) in :class:`AuditingStrategy`. In
``aggregate_fit`` every chosen client's ``FitRes`` becomes a :class:`~gifd.fl.SharedUpdate` built only from
what the server holds: the round's global parameters it sent, the parameters the client returned, the
client's ``num_examples``, and the fit config it sent (local learning rate, epochs, mini-batch size). The
update goes to ``on_capture`` (by default it is kept in :attr:`AuditingStrategy.captures` for the attacks);
aggregation is then left to the wrapped strategy, with the same arguments, so auditing never changes
training. Clients are ordinary Flower ``NumPyClient``/``ClientApp`` code; :class:`TorchClient` is one (the
PyTorch client of Flower's quickstart, plain SGD) used by the notebook, and nothing of the audit is in it.

Reading the update (``mode``):

* ``"replay"``: a FedAvg weight delta (global minus returned weights) whose local steps the attack unrolls:
  ``epochs * num_examples / batch_size`` SGD steps at ``lr`` on contiguous, unshuffled mini-batches
  (:class:`~gifd.fl.LocalTraining`). Exact for a client that trains this way (the exactness test), wrong in
  its details for a client that shuffles.
* ``"gradient"`` (default): the delta divided by ``lr * steps``, read as the mean gradient of the whole
  partition (FedSGD); Flower's own clients shuffle, so this is what a server can always do. Exact for one
  full-batch step, an approximation that degrades as local work grows (what ``06_flower_audit`` measures).

Flower's client-side fixed clipping (``fixedclipping_mod`` on the client with the server wrapper
``DifferentialPrivacyClientSideFixedClipping``) clips each update before it is sent and adds noise only to
the aggregate, so the auditor sees clipped, noise-free updates; the clipping norm is in the fit config and
is recorded as the update's defense, which the adaptive attacker applies to its simulated updates (Flower's
norm runs over every array sent, so it also counts BatchNorm statistics that train-mode clients move; ours
counts the parameters only: the same for eval-mode BatchNorm).

Bad input never stops training: a client whose parameters do not fit the model, whose fit config lacks a
hyper-parameter, or whose result holds NaN/Inf is skipped by the audit with a message naming it and why
(kept in :attr:`AuditingStrategy.skipped`); the wrapped strategy still aggregates exactly what it received.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from logging import INFO, WARNING

import numpy as np
import torch
from flwr.client import NumPyClient
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    parameters_to_ndarrays,
)
from flwr.common.logger import log
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg, Strategy
from torch import nn

from .fl import LocalTraining, SharedUpdate

__all__ = [
    "FIT_KEYS",
    "KEY_CLIPPING_NORM",
    "AuditSkip",
    "Capture",
    "AuditingStrategy",
    "capture_update",
    "model_arrays",
    "TorchClient",
]

#: fit-config keys the audit reads (the server sends them; Flower's examples name them alike)
FIT_KEYS = {"lr": "lr", "epochs": "local_epochs", "batch_size": "batch_size"}
#: the key under which Flower's DifferentialPrivacyClientSideFixedClipping sends the clipping norm
KEY_CLIPPING_NORM = "clipping_norm"
MODES = ("gradient", "replay")


class AuditSkip(ValueError):
    """A client's result the audit cannot read (the message says why); the client is skipped, training goes on."""


# ---------------------------------------------------------------------------------------------------------------
# Flower arrays <-> the model


def _layouts(model: nn.Module) -> list[tuple[str, list[str]]]:
    """The array lists a Flower app may exchange for ``model``: the whole state dict (Flower's PyTorch
    examples), its floating-point entries (counters such as ``num_batches_tracked`` left out), or the
    parameters alone."""
    state = model.state_dict()
    return [
        ("state_dict", list(state)),
        ("float state", [k for k, v in state.items() if v.is_floating_point()]),
        ("parameters", [n for n, _ in model.named_parameters()]),
    ]


def model_arrays(model: nn.Module, layout: str = "float state") -> list[np.ndarray]:
    """``model``'s arrays as a Flower app sends them (``layout``: ``state_dict``, ``float state`` or
    ``parameters``), e.g. the strategy's ``initial_parameters``."""
    names = dict(_layouts(model))
    if layout not in names:
        raise ValueError(f"unknown layout {layout!r}; choose one of {sorted(names)}")
    state = model.state_dict()
    return [state[k].detach().cpu().numpy().copy() for k in names[layout]]


def _match_layout(model: nn.Module, arrays: Sequence[np.ndarray], what: str) -> list[str]:
    """The names of ``arrays`` under the first layout they fit; :class:`AuditSkip` naming the mismatch else."""
    state = model.state_dict()
    reasons = []
    for layout, names in _layouts(model):
        if len(names) != len(arrays):
            reasons.append(f"{layout}: {len(names)}")
            continue
        for name, a in zip(names, arrays):
            if tuple(np.shape(a)) != tuple(state[name].shape):
                raise AuditSkip(
                    f"{what} do not fit the model: array {name!r} has shape {tuple(np.shape(a))}, "
                    f"the model's {tuple(state[name].shape)}"
                )
        return names
    raise AuditSkip(f"{what} do not fit the model: {len(arrays)} arrays, the model has " + ", ".join(reasons))


def _config_value(config: dict, known: dict, key: str, name: str, kind: type):
    value = config.get(key, known.get(name))
    if value is None:
        raise AuditSkip(
            f"the fit config it was sent lacks {key!r} (the local {name}; it has {sorted(config)}), "
            "and no known value was given"
        )
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AuditSkip(f"the fit config's {key!r} is {value!r}, not a number") from None
    if not (math.isfinite(number) and number > 0) or (kind is int and number != int(number)):
        raise AuditSkip(f"the fit config's {key!r} is {value!r}, not a positive {kind.__name__}")
    return kind(number)


def capture_update(
    model: nn.Module,
    global_arrays: Sequence[np.ndarray],
    client_arrays: Sequence[np.ndarray],
    num_examples: int,
    config: dict,
    *,
    mode: str = "gradient",
    keys: dict[str, str] = FIT_KEYS,
    known: dict | None = None,
) -> tuple[SharedUpdate, dict[str, torch.Tensor]]:
    """What the server learns from one ``FitRes``, as a :class:`~gifd.fl.SharedUpdate`, and the round's global
    state (name -> tensor) the attack's model must hold.

    Args:
        model: the server's copy of the architecture (its weights are not used).
        global_arrays: the parameters the server sent this round; ``client_arrays``: those returned.
        num_examples: the client's reported ``num_examples`` (the batch the attack reconstructs).
        config: the fit config the server sent this client (local ``lr``, ``epochs``, ``batch_size`` under
            ``keys``; a :data:`KEY_CLIPPING_NORM` entry is recorded as the update's clipping defense).
        mode: ``gradient`` or ``replay`` (see the module docstring).
        known: hyper-parameters the server knows otherwise (e.g. from Flower's run config), used when the fit
            config lacks them: ``{"lr": ..., "epochs": ..., "batch_size": ...}``.

    Raises :class:`AuditSkip` with the reason for anything the audit cannot read.
    """
    if mode not in MODES:
        raise ValueError(f"unknown audit mode {mode!r}; choose one of {MODES}")
    known = known or {}
    names = _match_layout(model, global_arrays, "the global parameters")
    client_names = _match_layout(model, client_arrays, "its parameters")
    if client_names != names:
        raise AuditSkip(f"its parameters are laid out as {len(client_names)} arrays, the server sent {len(names)}")
    for name, a in zip(names, client_arrays):
        if not np.issubdtype(np.asarray(a).dtype, np.number) or not np.isfinite(a).all():
            raise AuditSkip(f"its parameters contain NaN or Inf (in {name!r})")
    if not (isinstance(num_examples, int | np.integer) and num_examples >= 1):
        raise AuditSkip(f"it reports num_examples={num_examples!r}")
    n = int(num_examples)
    lr = _config_value(config, known, keys["lr"], "lr", float)
    epochs = _config_value(config, known, keys["epochs"], "epochs", int)
    batch = min(_config_value(config, known, keys["batch_size"], "batch_size", int), n)
    steps = epochs * math.ceil(n / batch)
    glob = {k: torch.from_numpy(np.array(a, copy=True)) for k, a in zip(names, global_arrays)}
    returned = {k: torch.from_numpy(np.array(a, copy=True)) for k, a in zip(names, client_arrays)}
    params = [p for p, _ in model.named_parameters()]
    missing = [p for p in params if p not in glob]
    if missing:
        raise AuditSkip(f"its arrays leave out the model parameter {missing[0]!r}")
    delta = {p: (glob[p] - returned[p]).float() for p in params}
    clip = config.get(KEY_CLIPPING_NORM)
    if mode == "replay":
        if n % batch:
            raise AuditSkip(
                f"{n} examples do not split into mini-batches of {batch}, so its local steps cannot be replayed "
                "(use mode='gradient')"
            )
        local = LocalTraining(steps=steps, lr=lr, batch_size=None if batch == n else batch)
        defense = {"name": "clipping", "strength": float(clip)} if clip is not None else None
        update = SharedUpdate.from_tensors(delta, "weight_delta", num_samples=n, local=local, defense=defense)
    else:
        scale = lr * steps
        defense = {"name": "clipping", "strength": float(clip) / scale} if clip is not None else None
        tensors = {p: d / scale for p, d in delta.items()}
        update = SharedUpdate.from_tensors(tensors, "gradient", num_samples=n, defense=defense)
    return update, glob


# ---------------------------------------------------------------------------------------------------------------
# the auditing strategy


@dataclass
class Capture:
    """One audited client result: the round, the client (its key and Flower node id), the update the attacks
    see, the round's global state, and what else the server knew (fit config, ``num_examples``, metrics)."""

    round: int
    client: str
    cid: str
    update: SharedUpdate
    global_state: dict[str, torch.Tensor]
    config: dict
    num_examples: int
    metrics: dict = field(default_factory=dict)
    delta_norm: float | None = None  # global L2 norm of (sent - returned) over every array, as Flower clips it

    def global_model(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` holding this round's global weights (the model the client started from)."""
        out = copy.deepcopy(model)
        state = out.state_dict()
        state.update({k: v.to(state[k].dtype) for k, v in self.global_state.items()})
        out.load_state_dict(state)
        return out


class AuditingStrategy(Strategy):
    """A Flower ``Strategy`` that audits the clients' fit results and otherwise is ``strategy``.

    Args:
        model: the server's copy of the global model's architecture (to read the arrays by name).
        strategy: the wrapped strategy (default ``FedAvg()``); every call is delegated to it unchanged.
        rounds: the server rounds to audit (``None``: all).
        clients: the clients to audit, by key (``None``: all).
        client_key: a fit metric naming the client (e.g. ``"partition_id"``); ``None``: Flower's node id.
        mode: ``gradient`` or ``replay`` (module docstring).
        keys: the fit-config keys of the local ``lr``, ``epochs`` and ``batch_size`` (:data:`FIT_KEYS`).
        known: hyper-parameters the server knows besides the fit config (see :func:`capture_update`).
        on_capture: called with each :class:`Capture` (e.g. to attack it at once); default: keep it in
            :attr:`captures`. An exception there is reported like a bad result and training goes on.
    """

    def __init__(
        self,
        model: nn.Module,
        strategy: Strategy | None = None,
        *,
        rounds: Sequence[int] | None = (1,),
        clients: Sequence[str | int] | None = None,
        client_key: str | None = None,
        mode: str = "gradient",
        keys: dict[str, str] | None = None,
        known: dict | None = None,
        on_capture: Callable[[Capture], None] | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown audit mode {mode!r}; choose one of {MODES}")
        keys = {**FIT_KEYS, **(keys or {})}
        if set(keys) != set(FIT_KEYS):
            raise ValueError(f"keys names {sorted(keys)}; expected {sorted(FIT_KEYS)}")
        self.model = model
        self.strategy = strategy if strategy is not None else FedAvg()
        self.rounds = None if rounds is None else {int(r) for r in rounds}
        self.clients = None if clients is None else {str(c) for c in clients}
        self.client_key, self.mode, self.keys, self.known = client_key, mode, keys, dict(known or {})
        self.on_capture = on_capture
        self.captures: list[Capture] = []
        self.skipped: list[dict] = []
        self.rounds_aggregated: list[int] = []
        self._sent: dict[int, tuple[list[np.ndarray], dict[str, dict]]] = {}

    def __repr__(self) -> str:
        return f"AuditingStrategy({self.strategy!r}, mode={self.mode!r})"

    def audits(self, server_round: int) -> bool:
        return self.rounds is None or server_round in self.rounds

    # -- delegated ------------------------------------------------------------------------------------------
    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return self.strategy.initialize_parameters(client_manager)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        instructions = self.strategy.configure_fit(server_round, parameters, client_manager)
        if self.audits(server_round):  # what the server sends: the global parameters and each fit config
            configs = {proxy.cid: dict(ins.config) for proxy, ins in instructions}
            self._sent[server_round] = (parameters_to_ndarrays(parameters), configs)
        return instructions

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        sent = self._sent.pop(server_round, None)
        if sent is not None:
            for proxy, res in results:
                self._audit(server_round, proxy, res, *sent)
        self.rounds_aggregated.append(server_round)
        return self.strategy.aggregate_fit(server_round, results, failures)

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return self.strategy.configure_evaluate(server_round, parameters, client_manager)

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        return self.strategy.aggregate_evaluate(server_round, results, failures)

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        return self.strategy.evaluate(server_round, parameters)

    # -- the audit ------------------------------------------------------------------------------------------
    def _key(self, proxy: ClientProxy, res: FitRes) -> str:
        if self.client_key is not None and self.client_key in (res.metrics or {}):
            return str(res.metrics[self.client_key])
        return str(proxy.cid)

    def _skip(self, server_round: int, client: str, cid: str, reason: str) -> None:
        self.skipped.append({"round": server_round, "client": client, "cid": cid, "reason": reason})
        log(WARNING, "audit: round %s, client %s (node %s) skipped: %s", server_round, client, cid, reason)

    def _audit(self, server_round, proxy, res, global_arrays, configs) -> None:
        client = self._key(proxy, res)
        if self.clients is not None and client not in self.clients:
            return
        try:
            returned = parameters_to_ndarrays(res.parameters)
            update, state = capture_update(
                self.model, global_arrays, returned, res.num_examples, configs.get(proxy.cid, {}), mode=self.mode,
                keys=self.keys, known=self.known,
            )  # fmt: skip
            norm = math.sqrt(sum(float(np.sum((np.asarray(g, np.float64) - r) ** 2))
                                 for g, r in zip(global_arrays, returned)))  # fmt: skip
        except AuditSkip as err:
            return self._skip(server_round, client, proxy.cid, str(err))
        except Exception as err:  # an unreadable result (e.g. bytes that are no arrays) must not stop training
            return self._skip(server_round, client, proxy.cid, f"its result cannot be read ({err!r})")
        capture = Capture(server_round, client, str(proxy.cid), update, state, dict(configs.get(proxy.cid, {})),
                          int(res.num_examples), dict(res.metrics or {}), norm)  # fmt: skip
        log(INFO, "audit: round %s, client %s: captured a %s of %s examples", server_round, client, update.kind,
            update.num_samples)  # fmt: skip
        if self.on_capture is None:
            self.captures.append(capture)
            return
        try:
            self.on_capture(capture)
        except Exception as err:
            self._skip(server_round, client, proxy.cid, f"the audit's handler failed ({err!r})")


# ---------------------------------------------------------------------------------------------------------------
# a plain Flower client (the notebook's; the audit never relies on it)


class TorchClient(NumPyClient):
    """Flower's quickstart PyTorch client: load the global arrays, train ``local_epochs`` epochs of plain SGD
    at ``lr`` over a ``DataLoader`` of ``batch_size`` (all three from the fit config), return the arrays.

    Args:
        model: the client's model (trained in the BatchNorm mode it is given).
        images: the partition, already normalised for the model; ``labels``: its classes.
        shuffle: shuffle the mini-batches each epoch (Flower's examples do; ``False`` trains on contiguous
            mini-batches as :class:`gifd.fl.LocalTraining` does).
        seed: seed of the shuffling (varied by ``server_round`` when the config carries it).
        layout: the arrays exchanged (:func:`model_arrays`); the floating-point state by default, since
            Flower's ``fixedclipping_mod`` cannot scale integer counters.
        metrics: returned with every fit (e.g. ``{"partition_id": 0}``).
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, shuffle: bool = True,
                 seed: int = 0, layout: str = "float state", metrics: dict | None = None) -> None:  # fmt: skip
        self.model, self.images, self.labels = model, images, labels
        self.shuffle, self.seed, self.layout, self.metrics = shuffle, seed, layout, dict(metrics or {})

    def get_parameters(self, config):
        return model_arrays(self.model, self.layout)

    def set_parameters(self, arrays) -> None:
        names = dict(_layouts(self.model))[self.layout]
        state = self.model.state_dict()
        state.update({k: torch.from_numpy(np.array(a, copy=True)) for k, a in zip(names, arrays)})
        self.model.load_state_dict(state)

    def fit(self, parameters, config):
        from torch.utils.data import DataLoader, TensorDataset

        self.set_parameters(parameters)
        g = torch.Generator().manual_seed(int(self.seed) * 1000 + int(config.get("server_round", 0)))
        loader = DataLoader(TensorDataset(self.images, self.labels), batch_size=int(config["batch_size"]),
                            shuffle=self.shuffle, generator=g)  # fmt: skip
        opt = torch.optim.SGD(self.model.parameters(), lr=float(config["lr"]))
        for _ in range(int(config["local_epochs"])):
            for x, y in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(self.model(x), y).backward()
                opt.step()
        return self.get_parameters({}), len(self.images), dict(self.metrics)
