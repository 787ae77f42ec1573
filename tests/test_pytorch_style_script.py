"""One PyTorch-style training script, run twice: with `torch` and with `import xbp as torch`. It
uses a Dataset/DataLoader with a sampler and worker processes, a Transformer encoder, Adam with a
warm-restart cosine schedule, then LBFGS on a regression head. The xbp run starts from the torch
run's weights (state_dict) and must print the same losses."""
import textwrap

import numpy as np
import pytest

torch_real = pytest.importorskip("torch")

SCRIPT = textwrap.dedent('''
    import numpy as np
    nn = torch.nn
    from_np = torch.from_numpy

    class Seqs(torch.utils.data.Dataset):
        def __init__(self, n=48, t=6, d=8, seed=0):
            r = np.random.default_rng(seed)
            self.x = r.standard_normal((n, t, d)).astype(np.float32)
            self.y = (self.x.sum(axis=(1, 2)) > 0).astype(np.int64)
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            return from_np(self.x[i]), int(self.y[i])

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2)
            self.head = nn.Linear(8, 2)
        def forward(self, x):
            return self.head(self.encoder(x).mean(dim=1))

    ds = Seqs()
    loader = torch.utils.data.DataLoader(ds, batch_size=8, sampler=torch.utils.data.SequentialSampler(ds),
                                         num_workers=2)
    model = Model()
    if INIT is not None:
        model.load_state_dict(INIT)
    INITIAL = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2)
    losses = []
    for epoch in range(2):
        for i, (x, y) in enumerate(loader):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step(epoch + i / len(loader))
            losses.append(loss.item())

    # LBFGS on a least-squares head over the frozen encoder features
    with torch.no_grad():
        feats = model.encoder(from_np(ds.x)).mean(dim=1)
    target = from_np(ds.x[:, 0, :2].copy())
    reg = nn.Linear(8, 2)
    if REG_INIT is not None:
        reg.load_state_dict(REG_INIT)
    REG_INITIAL = {k: v.detach().clone() for k, v in reg.state_dict().items()}
    lbfgs = torch.optim.LBFGS(reg.parameters(), lr=1, max_iter=20, line_search_fn="strong_wolfe")
    def closure():
        lbfgs.zero_grad()
        l = ((reg(feats) - target) ** 2).mean()
        l.backward()
        return l
    for _ in range(3):
        lbfgs.step(closure)
    losses.append(closure().item())
''')


def _run(torch_module, init=None, reg_init=None):
    ns = {"torch": torch_module, "INIT": init, "REG_INIT": reg_init}
    exec(SCRIPT, ns)
    return ns


def test_the_same_script_prints_the_same_losses():
    import xbp
    torch_real.manual_seed(0)
    ref = _run(torch_real)

    def conv(state):
        return {k: xbp.tensor(v.numpy()) for k, v in state.items()}
    ours = _run(xbp, init=conv(ref["INITIAL"]), reg_init=conv(ref["REG_INITIAL"]))
    assert len(ours["losses"]) == len(ref["losses"]) == 13
    np.testing.assert_allclose(ours["losses"], ref["losses"], rtol=2e-4, atol=2e-5)
    assert ours["losses"][11] < ours["losses"][0]       # the classifier learned something
