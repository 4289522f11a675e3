"""PyTorch oracle for common/train/optim.c: torch.optim.AdamW / torch.optim.SGD
driven by torch.optim.lr_scheduler.LambdaLR with Hugging Face transformers'
schedule lambdas, and torch.nn.utils.clip_grad_norm_.

stdin, a sequence of cases (values whitespace-separated, float32 printed
with %.9g so they round-trip exactly):
    opt <adamw|sgd> <constant|linear|cosine> lr wd beta1 beta2 eps momentum warmup total steps n lo hi
        then one line of n initial params, then `steps` lines of n grads;
        params [lo, hi) form a second parameter group with weight_decay 0
    sched <constant|linear|cosine> lr warmup total count
    clip max_norm n
        then one line of n grads
stdout, per case:
    opt:   `steps` lines: lr used, then the n params after that step
    sched: one line of `count` learning rates (the lr of optimizer steps 0..count-1)
    clip:  one line: total norm, then the n clipped grads
"""
import math
import sys

import torch
from torch.optim.lr_scheduler import LambdaLR


def hf_lambda(kind, warmup, total):
    # transformers.optimization: get_{constant,linear,cosine}_schedule_with_warmup
    def constant(step):
        if step < warmup:
            return float(step) / float(max(1.0, warmup))
        return 1.0

    def linear(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        return max(0.0, float(total - step) / float(max(1, total - warmup)))

    def cosine(step, num_cycles=0.5):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))

    return {"constant": constant, "linear": linear, "cosine": cosine}[kind]


def fmt(vals):
    return " ".join("%.9g" % v for v in vals)


def main():
    toks = sys.stdin.read().split()
    pos = 0

    def take(k):
        nonlocal pos
        out = toks[pos:pos + k]
        if len(out) != k:
            raise SystemExit("optim_oracle: truncated input")
        pos += k
        return out

    out = []
    while pos < len(toks):
        tag = take(1)[0]
        if tag == "opt":
            kind, sched = take(2)
            lr, wd, b1, b2, eps, mom = (float(v) for v in take(6))
            warmup, total, steps, n, lo, hi = (int(v) for v in take(6))
            init = [float(v) for v in take(n)]
            grads = [[float(v) for v in take(n)] for _ in range(steps)]
            cuts = [(0, lo), (lo, hi), (hi, n)]
            parts = [torch.tensor(init[a:b], dtype=torch.float32, requires_grad=True) for a, b in cuts]
            decayed = [parts[0], parts[2]]
            groups = [{"params": decayed}]
            if hi > lo:
                groups.append({"params": [parts[1]], "weight_decay": 0.0})
            if kind == "adamw":
                opt = torch.optim.AdamW(groups, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
            elif kind == "sgd":
                opt = torch.optim.SGD(groups, lr=lr, momentum=mom, dampening=0, weight_decay=wd,
                                      nesterov=False)
            else:
                raise SystemExit("optim_oracle: unknown optimizer " + kind)
            sch = LambdaLR(opt, hf_lambda(sched, warmup, total))
            for g in grads:
                used = opt.param_groups[0]["lr"]
                for t, (a, b) in zip(parts, cuts):
                    t.grad = torch.tensor(g[a:b], dtype=torch.float32)
                opt.step()
                sch.step()
                now = []
                for t in parts:
                    now += t.detach().tolist()
                out.append("%.17g %s" % (used, fmt(now)))
        elif tag == "sched":
            kind = take(1)[0]
            lr = float(take(1)[0])
            warmup, total, count = (int(v) for v in take(3))
            p = torch.zeros(1, requires_grad=True)
            opt = torch.optim.SGD([p], lr=lr)
            sch = LambdaLR(opt, hf_lambda(kind, warmup, total))
            lrs = []
            for _ in range(count):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sch.step()
            out.append(" ".join("%.17g" % v for v in lrs))
        elif tag == "clip":
            max_norm = float(take(1)[0])
            n = int(take(1)[0])
            p = torch.zeros(n, requires_grad=True)
            p.grad = torch.tensor([float(v) for v in take(n)], dtype=torch.float32)
            norm = torch.nn.utils.clip_grad_norm_([p], max_norm)
            out.append("%.17g %s" % (float(norm), fmt(p.grad.tolist())))
        else:
            raise SystemExit("optim_oracle: unknown case " + tag)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
