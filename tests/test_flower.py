"""The Flower audit: what the server captures is what gifd.fl computes, auditing never changes aggregation, and
bad client results are skipped with a reason while training goes on."""

import numpy as np
import pytest
import torch
from flwr.client import ClientApp, NumPyClient
from flwr.common import Code, FitIns, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from torch import nn

from gifd.attacks import make_attack
from gifd.fl import FLTask, LocalTraining, client_update
from gifd.flower import AuditingStrategy, TorchClient, capture_update, model_arrays
from gifd.flower_audit import FlowerAuditParams

TASK = FLTask(image_shape=(3, 8, 8), num_classes=4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
CONFIG = {"lr": 0.1, "local_epochs": 2, "batch_size": 2}


def tiny_net() -> nn.Module:
    """The federation's model (the Flower app's own code; eval-mode BatchNorm)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 4)
    ).eval()


def partition(pid: int, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + pid)
    return torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)


class PlainClient(NumPyClient):
    """A hand-written Flower client, nothing of gifd inside: the whole state dict goes over the wire, and it
    trains on contiguous, unshuffled mini-batches (so the server can replay its local steps exactly)."""

    def __init__(self, pid: int) -> None:
        self.net = tiny_net()
        images01, self.y = partition(pid)
        self.x = (images01 - 0.5) / 0.25

    def get_parameters(self, config):
        return [v.detach().cpu().numpy() for v in self.net.state_dict().values()]

    def fit(self, parameters, config):
        self.net.load_state_dict({k: torch.tensor(v) for k, v in zip(self.net.state_dict(), parameters)})
        opt = torch.optim.SGD(self.net.parameters(), lr=config["lr"])
        bs = config["batch_size"]
        for _ in range(config["local_epochs"]):
            for i in range(0, len(self.x), bs):
                opt.zero_grad()
                nn.functional.cross_entropy(self.net(self.x[i : i + bs]), self.y[i : i + bs]).backward()
                opt.step()
        return self.get_parameters({}), len(self.x), {}


class Proxy(ClientProxy):
    """A stand-in for a connected client (the strategy only reads its ``cid``)."""

    def get_properties(self, *a, **k):
        raise NotImplementedError

    get_parameters = fit = evaluate = reconnect = get_properties


def fit_res(arrays, n=4, metrics=None) -> FitRes:
    return FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), n, metrics or {})


class FixedClients(FedAvg):
    """FedAvg (its real aggregation) over a fixed list of proxies, without a client manager."""

    def __init__(self, proxies, configs=None, **kw):
        super().__init__(**kw)
        self.proxies, self.configs = proxies, configs or {}

    def configure_fit(self, server_round, parameters, client_manager):
        return [(p, FitIns(parameters, dict(self.configs.get(p.cid, CONFIG)))) for p in self.proxies]


def _trained(pid: int, global_arrays, config=CONFIG):
    client = PlainClient(pid)
    return client.fit(global_arrays, config)[0]


# -- exactness, without and with a real Flower simulation ---------------------------------------------------------


def test_replayed_capture_equals_client_update():
    net = tiny_net()
    g = model_arrays(net, "state_dict")
    update, state = capture_update(net, g, _trained(0, g), 4, CONFIG, mode="replay")
    images01, labels = partition(0)
    ref = client_update(net, TASK, images01, labels, protocol="fedavg", local=LocalTraining(4, 0.1, 2))
    assert update.kind == "weight_delta" and update.local == LocalTraining(4, 0.1, 2) and update.num_samples == 4
    assert update.names == ref.names and update.labels is None
    for a, b in zip(update.tensors, ref.tensors):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert set(state) == set(net.state_dict())


def test_torch_client_unshuffled_matches_and_one_full_batch_step_is_the_gradient():
    net = tiny_net()
    images01, labels = partition(1)
    g = model_arrays(net)
    client = TorchClient(tiny_net(), TASK.normalize(images01), labels, shuffle=False)
    returned, n, _ = client.fit(g, CONFIG)
    update, _ = capture_update(net, g, returned, n, CONFIG, mode="replay")
    ref = client_update(net, TASK, images01, labels, protocol="fedavg", local=LocalTraining(4, 0.1, 2))
    for a, b in zip(update.tensors, ref.tensors):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # one local step over the whole partition: the "gradient" reading is FedSGD's gradient
    one = {"lr": 0.05, "local_epochs": 1, "batch_size": 4}
    returned, n, _ = TorchClient(tiny_net(), TASK.normalize(images01), labels).fit(g, one)
    update, _ = capture_update(net, g, returned, n, one, mode="gradient")
    ref = client_update(net, TASK, images01, labels, protocol="fedsgd")
    assert update.kind == "gradient" and update.local is None
    for a, b in zip(update.tensors, ref.tensors):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


@pytest.fixture(scope="module")
def simulation():
    """One real Flower simulation: 2 plain clients, 1 round, the auditing server around FedAvg."""
    from flwr.simulation import run_simulation

    server_model = tiny_net()
    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=2, min_available_clients=2,
                      initial_parameters=ndarrays_to_parameters(model_arrays(server_model, "state_dict")),
                      on_fit_config_fn=lambda r: dict(CONFIG))  # fmt: skip
    audit = AuditingStrategy(server_model, strategy, rounds=[1], mode="replay")

    def client_fn(context):
        return PlainClient(int(context.node_config["partition-id"])).to_client()

    def server_fn(context):
        return ServerAppComponents(strategy=audit, config=ServerConfig(num_rounds=1))

    for attempt in range(3):  # on a loaded machine Ray sometimes fails to start (before any round): try again
        try:
            run_simulation(ServerApp(server_fn=server_fn), ClientApp(client_fn=client_fn), num_supernodes=2,
                           backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                           "init_args": {"num_cpus": 1}})  # fmt: skip
            break
        except RuntimeError:
            if audit.rounds_aggregated or attempt == 2:
                raise
    return server_model, audit


def test_flower_simulation_capture_equals_client_update(simulation):
    server_model, audit = simulation
    assert audit.rounds_aggregated == [1] and not audit.skipped
    assert len(audit.captures) == 2
    matched = set()
    for cap in audit.captures:
        assert cap.config == CONFIG and cap.num_examples == 4
        start = cap.global_model(server_model)
        for pid in (0, 1):  # node ids are Flower's; find the partition whose replayed update it is
            images01, labels = partition(pid)
            ref = client_update(start, TASK, images01, labels, protocol="fedavg", local=LocalTraining(4, 0.1, 2))
            if all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(cap.update.tensors, ref.tensors)):
                matched.add(pid)
    assert matched == {0, 1}
    # the captured update is what the attacks take
    cap = audit.captures[0]
    result = make_attack("ig", cap.global_model(server_model), TASK, budget=8, restarts=1, progress=False)(cap.update)
    assert result.images.shape == (4, 3, 8, 8) and result.evaluations <= 8


# -- aggregation is the wrapped strategy's ----------------------------------------------------------------------


def test_auditing_leaves_aggregation_unchanged():
    net = tiny_net()
    g = model_arrays(net, "state_dict")
    proxies = [Proxy("a"), Proxy("b"), Proxy("c")]
    nan = [a.copy() for a in _trained(2, g)]
    nan[0][0, 0, 0, 0] = np.nan
    results = [(proxies[0], fit_res(_trained(0, g))), (proxies[1], fit_res(_trained(1, g), n=3)),
               (proxies[2], fit_res(nan))]  # fmt: skip
    plain = FixedClients(proxies)
    audited = AuditingStrategy(net, FixedClients(proxies), rounds=None)
    params = ndarrays_to_parameters(g)
    assert [c.cid for c, _ in plain.configure_fit(1, params, None)] == ["a", "b", "c"]
    audited.configure_fit(1, params, None)
    want, _ = plain.aggregate_fit(1, results, [])
    got, _ = audited.aggregate_fit(1, results, [])
    for a, b in zip(parameters_to_ndarrays(got), parameters_to_ndarrays(want)):
        np.testing.assert_array_equal(a, b)  # bitwise, NaN included
    assert [c.client for c in audited.captures] == ["a", "b"]
    assert [s["client"] for s in audited.skipped] == ["c"]


# -- bad input ------------------------------------------------------------------------------------------------


class Recorder(FixedClients):
    def aggregate_fit(self, server_round, results, failures):
        self.received = results
        return None, {}


def test_bad_clients_are_skipped_with_their_reason_and_training_goes_on():
    net = tiny_net()
    g = model_arrays(net, "state_dict")
    good = _trained(0, g)
    nan = [a.copy() for a in good]
    nan[-1][0] = np.inf
    wrong_shape = [*good[:-1], np.zeros(3, dtype=np.float32)]
    names = ["good", "short", "shape", "nan", "noconfig"]
    proxies = [Proxy(n) for n in names]
    inner = Recorder(proxies, configs={"noconfig": {"lr": 0.1, "batch_size": 2}})  # no epochs sent to one client
    audit = AuditingStrategy(net, inner, rounds=[1])
    audit.configure_fit(1, ndarrays_to_parameters(g), None)
    results = [(proxies[0], fit_res(good)), (proxies[1], fit_res(good[:3])), (proxies[2], fit_res(wrong_shape)),
               (proxies[3], fit_res(nan)), (proxies[4], fit_res(good))]  # fmt: skip
    assert audit.aggregate_fit(1, results, []) == (None, {})
    assert inner.received is results  # the wrapped strategy got exactly what the server received
    assert [c.client for c in audit.captures] == ["good"]
    reasons = {s["client"]: s["reason"] for s in audit.skipped}
    assert list(reasons) == names[1:]
    assert "do not fit the model: 3 arrays" in reasons["short"]
    assert "shape (3,)" in reasons["shape"]
    assert "NaN or Inf" in reasons["nan"] and "'4.bias'" in reasons["nan"]
    assert "lacks 'local_epochs'" in reasons["noconfig"]
    # a round that is not audited is not even read
    audit.configure_fit(2, ndarrays_to_parameters(g), None)
    audit.aggregate_fit(2, results, [])
    assert len(audit.skipped) == 4 and audit.rounds_aggregated == [1, 2]


def test_known_hyperparameters_fill_a_missing_fit_config_and_clipping_is_recorded():
    net = tiny_net()
    g = model_arrays(net)
    returned = TorchClient(tiny_net(), TASK.normalize(partition(0)[0]), partition(0)[1]).fit(g, CONFIG)[0]
    update, _ = capture_update(
        net, g, returned, 4, {"clipping_norm": 0.5}, known={"lr": 0.1, "epochs": 2, "batch_size": 2}
    )
    assert update.kind == "gradient" and update.defense == {"name": "clipping", "strength": 0.5 / (0.1 * 4)}
    with pytest.raises(ValueError, match="unknown audit mode"):
        AuditingStrategy(net, mode="exact")


def test_audit_params_say_what_is_wrong():
    with pytest.raises(ValueError, match="need 8 indices"):
        FlowerAuditParams.from_dict({"indices": [0, 1, 2], "partition_sizes": [4]})
    with pytest.raises(ValueError, match="audit round 3"):
        FlowerAuditParams.from_dict({"rounds": 2, "audit_rounds": [3]})
    with pytest.raises(ValueError, match="unknown parameter 'clients'"):
        FlowerAuditParams.from_dict({"clients": 2})
    p = FlowerAuditParams.from_dict({"local_epochs": [1, 5], "partition_sizes": [2, 4], "dp_clipping_norm": 1.0})
    assert [s["name"] for s in p.settings()] == ["E=1 n=2", "E=1 n=4", "E=5 n=2", "E=5 n=4", "E=1 n=2 clip 1"]


def test_a_failing_capture_handler_is_reported_and_aggregation_still_happens():
    net = tiny_net()
    g = model_arrays(net, "state_dict")
    proxies = [Proxy("a"), Proxy("b")]

    def handler(capture):
        raise RuntimeError(f"out of memory attacking {capture.client}")

    audit = AuditingStrategy(net, FixedClients(proxies), on_capture=handler)
    audit.configure_fit(1, ndarrays_to_parameters(g), None)
    results = [(p, fit_res(_trained(i, g))) for i, p in enumerate(proxies)]
    aggregated, _ = audit.aggregate_fit(1, results, [])
    assert aggregated is not None and not audit.captures
    assert [s["reason"] for s in audit.skipped] == [
        "the audit's handler failed (RuntimeError('out of memory attacking a'))",
        "the audit's handler failed (RuntimeError('out of memory attacking b'))",
    ]


def test_a_finished_setting_is_kept_under_what_determines_it(tmp_path):
    from gifd.data import load_images
    from gifd.flower_audit import _attack_parts, _setting_cache
    from gifd.models import make_model

    task = load_images("samples", None, [0]).task
    model = make_model("convnet", task.num_classes, seed=0)

    def cache(**params):
        p = FlowerAuditParams.from_dict({"out_dir": str(tmp_path), "methods": ["ig", "gi"], **params})
        parts = _attack_parts(p, model, task)
        return [_setting_cache(p, s, parts) for s in p.settings()]

    key, second = cache(local_epochs=[1, 5])
    assert key.parent == tmp_path / "settings" and key.name.startswith("E1_n4-")
    assert second != key
    assert cache(local_epochs=[1], progress=False, device="cpu") == [key]  # other settings, progress, device: no
    assert cache(local_epochs=[1, 5], budget=41)[0] != key
    assert cache(local_epochs=[1], methods=["ig"])[0] != key  # the setting's cache holds every method's attacks
    assert cache(local_epochs=[1], restarts=3)[0] != key


def test_the_audit_keeps_gifds_stages_matched_and_its_explorer_browses_them(tmp_path):
    """run_audit keeps GIFD's image at each stage, matched to the private images like the final one (whose best
    stage it is), through the setting's cache; the explorer's stage slider spans them for GIFD only."""
    from gifd.flower_audit import run_audit
    from gifd.widgets import explore_audit

    params = {"indices": [0, 1, 2, 3], "batch_size": 2, "budget": 12, "restarts": 1, "methods": ["ig", "gifd"],
              "model": "convnet", "rounds": 1, "local_epochs": [1], "partition_sizes": [2], "audit_rounds": [1],
              "audit_clients": [0], "lpips": False, "progress": False, "out_dir": str(tmp_path)}  # fmt: skip
    audits = [run_audit(params), run_audit(params)]  # the second from the setting's cache
    for audit in audits:
        (key,) = [k for k in audit.reconstructions if k[3] == "gifd"]
        assert set(audit.stages) == {key}  # IG has no stages
        images, scores = audit.stages[key]
        assert len(images) == len(scores) > 1
        final = audit.reconstructions[key]
        best = min(range(len(scores)), key=scores.__getitem__)
        assert torch.allclose(images[best], final, atol=2e-3)  # fp16 copies of the matched images
        assert all(im.shape == final.shape for im in images)
    (setting,) = audits[0].results["flat_grey_psnr"]  # what no attack scores, beside the table
    truth = audits[0].truth[(setting, 0)]
    expected = 10 * torch.log10(1 / (truth - 0.5).pow(2).flatten(1).mean(1)).mean()
    assert audits[0].results["flat_grey_psnr"][setting] == pytest.approx(float(expected), rel=1e-5)
    box = explore_audit(audits[1])
    method, update, stage = box.children[0].children
    assert list(method.options) == ["ig", "gifd"] and stage.disabled and stage.max == 0
    assert update.value == key[:3]
    method.value = "gifd"
    assert not stage.disabled and stage.max == len(images) - 1
    stage.value = 1  # redraws without error
