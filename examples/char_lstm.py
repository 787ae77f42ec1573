"""A character-level LSTM language model, trained with xbp on seven Shakespeare sonnets
(examples/data/tiny_text.txt, public domain), then sampled.

    python examples/char_lstm.py [--device cpu|cuda|strict] [--steps 300] [--seed 0]

Embedding(V, 48) -> LSTM(48, 192, 2 layers, batch_first) -> Linear(192, V), trained on random
64-character windows (batch 32) with Adam, gradient-norm clipping at 1.0 and next-character
cross-entropy. The loss starts at ln(V) = 4.1 nats (a uniform guess over the V = 62 characters),
is near 2.1 after 80 steps and below 1.0 after 200 (about 0.17 s a step on two CPU cores), and
keeps falling as the model memorises the sonnets. At the end it prints 400 sampled characters, continuing a prompt, with
the LSTM run one character at a time on its carried state.
Output lines: ``step N  loss L``, ``initial loss L0``, ``final loss L1`` and ``sample:`` with the text.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xbp  # noqa: E402
import xbp.nn as nn  # noqa: E402
import xbp.nn.functional as F  # noqa: E402
from xbp.nn.utils import clip_grad_norm_  # noqa: E402
from xbp.optim import Adam  # noqa: E402

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tiny_text.txt")


class CharLSTM(nn.Module):
    def __init__(self, vocab, emb=48, hidden=192, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids, state=None):
        """ids (B, T) -> logits (B, T, V) and the final (h, c) state."""
        out, state = self.lstm(self.embed(ids), state)
        return self.head(out), state


def sample(model, stoi, itos, prompt, n, temperature, rng, device):
    """Feed the prompt, then draw n characters one at a time, carrying the LSTM state."""
    model.eval()
    out = list(prompt)
    with xbp.no_grad():
        ids = xbp.tensor([[stoi[ch] for ch in prompt]], device=device)
        logits, state = model(ids)
        for _ in range(n):
            p = F.softmax(logits[0, -1, :] / temperature, dim=-1).numpy().astype(np.float64)
            k = int(rng.choice(len(p), p=p / p.sum()))
            out.append(itos[k])
            logits, state = model(xbp.tensor([[k]], device=device), state)
    model.train()
    return "".join(out)


def main(argv=None):
    import _cli
    ap = _cli.Parser(description="Train a character-level LSTM with xbp and sample from it")
    ap.add_argument("--device", default=None, help="cpu, cuda or strict (default: $XBP_DEVICE or cpu)")
    ap.add_argument("--steps", type=_cli.int_at_least("--steps", 1), default=300)
    ap.add_argument("--seq-len", type=_cli.int_at_least("--seq-len", 2), default=64)
    ap.add_argument("--batch-size", type=_cli.int_at_least("--batch-size", 1), default=32)
    ap.add_argument("--lr", type=_cli.positive_float("--lr"), default=4e-3)
    ap.add_argument("--seed", type=_cli.int_at_least("--seed", 0), default=0)
    ap.add_argument("--sample-chars", type=_cli.int_at_least("--sample-chars", 0), default=400)
    ap.add_argument("--temperature", type=_cli.positive_float("--temperature"), default=0.7)
    args = ap.parse_args(argv)
    args.device = _cli.use_device(args.device)   # before anything is built: --device beats XBP_DEVICE

    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = np.array([stoi[ch] for ch in text], dtype=np.int64)
    V, T, B = len(chars), args.seq_len, args.batch_size
    xbp.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = CharLSTM(V).to(args.device)
    opt = Adam(model.parameters(), lr=args.lr)
    print(f"device {args.device}: {len(text)} characters, vocabulary {V} (uniform loss ln V = {math.log(V):.3f}), "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    t0 = time.perf_counter()
    first, recent = None, []
    every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        starts = rng.integers(0, len(data) - T - 1, size=B)
        win = np.stack([data[s:s + T + 1] for s in starts])
        x = xbp.tensor(win[:, :-1], device=args.device)
        y = xbp.tensor(win[:, 1:].reshape(-1), device=args.device)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, V), y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = float(loss.item())
        first = value if first is None else first
        recent = (recent + [value])[-10:]
        if step % every == 0 or step == args.steps:
            print(f"step {step:5d}  loss {value:.4f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    final = sum(recent) / len(recent)
    print(f"initial loss {first:.4f}")
    print(f"final loss {final:.4f}  (mean of the last {len(recent)} steps)")
    text_out = sample(model, stoi, chars, "Shall I ", args.sample_chars, args.temperature, rng, args.device)
    print("sample:")
    print(text_out)
    return first, final


if __name__ == "__main__":
    main()
