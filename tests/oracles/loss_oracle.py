"""PyTorch oracle for common/train/loss.c: the DPO-family losses written the way
TRL's DPOTrainer / CPOTrainer write them (F.logsigmoid, torch.sigmoid,
torch.relu, torch.exp), evaluated in float64, derivatives by autograd.

stdin, repeated per case:
    case <kinds,comma,separated> <weights,comma,separated> <beta> <ls> <gamma> <tau> <n>
    then n lines: pi_c pi_r ref_c ref_r n_c n_r nll_c n_nll_c
stdout, per case:
    L
    then n lines: d_pi_c d_pi_r d_nll_c reward_c reward_r
(all %.17g). Exits non-zero on any problem, so a missing torch fails the test.
"""
import math
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def term(kind, beta, ls, gamma, tau, pc, pr, rc_, rr_, nc, nr, nll, nn):
    chosen_logratios = pc - rc_
    rejected_logratios = pr - rr_
    delta = chosen_logratios - rejected_logratios
    if kind == "sigmoid":
        return -F.logsigmoid(beta * delta) * (1 - ls) - F.logsigmoid(-beta * delta) * ls
    if kind == "robust":
        clean = -(1 - ls) * F.logsigmoid(beta * delta)
        flipped = -ls * F.logsigmoid(-beta * delta)
        return (clean - flipped) / (1 - 2 * ls)
    if kind == "ipo":
        d = chosen_logratios / nc.clamp(min=1.0) - rejected_logratios / nr.clamp(min=1.0)
        return (d - 1 / (2 * beta)) ** 2
    if kind == "hinge":
        return torch.relu(1 - beta * delta)
    if kind == "exo_pair":
        eps = torch.tensor(ls)
        qw = torch.sigmoid(beta * delta)
        ql = torch.sigmoid(-beta * delta)
        return qw * (F.logsigmoid(beta * delta) - torch.log1p(-eps)) + ql * (
            F.logsigmoid(-beta * delta) - torch.log(eps))
    if kind == "nca_pair":
        cr = beta * chosen_logratios
        rr = beta * rejected_logratios
        return -F.logsigmoid(cr) - 0.5 * F.logsigmoid(-cr) - 0.5 * F.logsigmoid(-rr)
    if kind == "bco_pair":
        return -F.logsigmoid(beta * chosen_logratios) - F.logsigmoid(-beta * rejected_logratios)
    if kind == "sppo_hard":
        return (chosen_logratios - 0.5 / beta) ** 2 + (rejected_logratios + 0.5 / beta) ** 2
    if kind == "apo_zero":
        return 1 - torch.sigmoid(beta * chosen_logratios) + torch.sigmoid(beta * rejected_logratios)
    if kind == "apo_down":
        return torch.sigmoid(beta * chosen_logratios) + 1 - torch.sigmoid(beta * delta)
    if kind == "sigmoid_norm":
        d = chosen_logratios / nc.clamp(min=1.0) - rejected_logratios / nr.clamp(min=1.0)
        return -F.logsigmoid(beta * d)
    if kind == "discopop":
        logits = beta * delta
        mod = torch.sigmoid(logits / tau)
        return -F.logsigmoid(logits) * (1 - mod) + torch.exp(-logits) * mod
    if kind == "simpo":
        logits = pc / nc.clamp(min=1.0) - pr / nr.clamp(min=1.0) - gamma / beta
        return -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
    if kind == "sft":
        total = nn.sum()
        v = nll.sum() / total if total > 0 else nll.sum() * 0
        return v.expand(pc.shape[0])
    raise SystemExit("loss_oracle: unknown kind " + kind)


def main():
    lines = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
    i = 0
    out = []
    while i < len(lines):
        h = lines[i]
        if h[0] != "case" or len(h) != 8:
            raise SystemExit("loss_oracle: bad header %r" % (h,))
        kinds = h[1].split(",")
        weights = [float(w) for w in h[2].split(",")]
        beta, ls, gamma, tau = (float(v) for v in h[3:7])
        n = int(h[7])
        rows = [[float(v) for v in lines[i + 1 + j]] for j in range(n)]
        i += 1 + n
        cols = list(zip(*rows))
        pc = torch.tensor(cols[0], requires_grad=True)
        pr = torch.tensor(cols[1], requires_grad=True)
        rc_, rr_, nc, nr = (torch.tensor(c) for c in cols[2:6])
        nll = torch.tensor(cols[6], requires_grad=True)
        nn = torch.tensor(cols[7])
        L = torch.zeros(())
        for k, w in zip(kinds, weights):
            L = L + w * term(k, beta, ls, gamma, tau, pc, pr, rc_, rr_, nc, nr, nll, nn).mean()
        L.backward()
        gc = pc.grad if pc.grad is not None else torch.zeros_like(pc)
        gr = pr.grad if pr.grad is not None else torch.zeros_like(pr)
        gn = nll.grad if nll.grad is not None else torch.zeros_like(nll)
        if all(k in ("simpo", "sft") for k in kinds) and "simpo" in kinds:
            rwc = beta * pc.detach() / nc.clamp(min=1.0)
            rwr = beta * pr.detach() / nr.clamp(min=1.0)
        else:
            rwc = beta * (pc.detach() - rc_)
            rwr = beta * (pr.detach() - rr_)
        out.append("%.17g" % L.item())
        for j in range(n):
            out.append("%.17g %.17g %.17g %.17g %.17g" % (
                gc[j].item(), gr[j].item(), gn[j].item(), rwc[j].item(), rwr[j].item()))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
