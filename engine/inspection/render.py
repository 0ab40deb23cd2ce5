"""The terminal text of each inspect view, from its plain-data report (engine.inspection.views).

Tokens are shown escaped (a space as ␣, a newline as \\n); attention is a heatmap of shades, one
character a key, one line a query, each row scaled to its largest weight (a long row of small
weights still shows where it looks); the tables fit 80 columns for prompts of a few dozen tokens.
Torch-free (json only): the app's inspect screen draws the same reports with it, and reads here the
ablation modes it offers.
"""

from __future__ import annotations

import json

ABLATION_MODES = ("zero", "mean")  # what ablation.check_mode accepts
SHADES = " ░▒▓█"  # 0 .. a row's largest weight, in equal steps
LABEL = 8  # characters of a token label


def shown(token: str, width: int = LABEL) -> str:
    """A token as one readable cell: spaces as ␣, control characters escaped, cut to `width`."""
    text = json.dumps(token, ensure_ascii=False)[1:-1].replace(" ", "␣")
    return text if len(text) <= width else text[: width - 1] + "…"


def shade(weight: float) -> str:
    """The shade of a weight in [0, 1]."""
    return SHADES[min(int(weight * len(SHADES)), len(SHADES) - 1)]


def tokens_text(report: dict) -> str:
    lines = [f"{'pos':>4}  {'token':<{LABEL}}  {'prob':>6}  {'bits':>6}  top alternatives"]
    for row in report["tokens"]:
        top = "  ".join(f"{shown(alt['token'], 6)} {alt['prob']:.2f}" for alt in row["top"])
        lines.append(
            f"{row['position']:>4}  {shown(row['token']):<{LABEL}}  {row['prob']:6.3f}  {row['bits']:6.2f}  {top}"
        )
    worst = ", ".join(
        f"{shown(report['tokens'][t]['token'])} ({report['tokens'][t]['bits']:.1f} bits)" for t in report["worst"]
    )
    lines += [
        f"worst: {worst}",
        f"{len(report['tokens'])} tokens, {report['bytes']} bytes: {report['loss']:.3f} nats/token, "
        f"{report['bits_per_token']:.3f} bits/token, {report['bpb']:.3f} bits/byte",
    ]
    return "\n".join(lines)


def heatmap(tokens: list[str], weights: list[list[float]]) -> list[str]:
    """One line per query: its label, then a shade per key it may see (keys run left to right)."""
    lines = []
    for q, (token, row) in enumerate(zip(tokens, weights)):
        seen = row[: q + 1]
        top = max(seen) or 1.0
        lines.append(f"{shown(token):>{LABEL}} │{''.join(shade(w / top) for w in seen)}")
    return lines


def attention_text(report: dict) -> str:
    lines = [
        f"layer {report['layer']} head {report['head']}: a row per query, a column per key; "
        f"shades {SHADES!r}: 0 … the row's largest weight"
    ]
    lines += heatmap(report["tokens"], report["weights"])
    lines += ["", f"{'layer':>5} {'head':>4} {'kv':>3}  {'entropy':>7}  {'prev':>5}  {'first':>5}  {'induct':>6}"]
    for h in report["heads"]:
        lines.append(
            f"{h['layer']:>5} {h['head']:>4} {h['kv_head']:>3}  {h['entropy']:7.2f}  {h['previous']:5.2f}  "
            f"{h['first']:5.2f}  {h['induction']:6.2f}"
        )
    lines.append("entropy in bits; prev / first: mean share on the previous / first token; induct: induction score")
    return "\n".join(lines)


def lens_text(report: dict) -> str:
    layers = report["layers"]
    header = f"{'pos':>4}  {'token':<{LABEL}}  " + "  ".join(f"{'L' + str(n):<13}" for n in range(len(layers)))
    lines = [header + "  next"]
    tokens = report["tokens"]
    for t, token in enumerate(tokens):
        cells = "  ".join(f"{shown(layer['top'][t]):<{LABEL}} {layer['prob'][t]:.2f}" for layer in layers)
        following = shown(tokens[t + 1]) if t + 1 < len(tokens) else ""
        lines.append(f"{t:>4}  {shown(token):<{LABEL}}  {cells}  {following}")
    lines.append("each layer's top next token and its probability: final norm + lm_head on the residual stream")
    return "\n".join(lines)


def ablate_text(report: dict) -> str:
    lines = [
        f"baseline held-out loss {report['baseline']:.4f} over {report['tokens']} tokens ({report['mode']} ablation)",
        f"{'component':<12} {'loss':>8} {'damage':>9}",
    ]
    scale = max((abs(row["damage"]) for row in report["rows"]), default=0.0) or 1.0
    for row in report["rows"]:
        bar = "█" * round(20 * max(row["damage"], 0.0) / scale)
        lines.append(f"{row['component']:<12} {row['loss']:8.4f} {row['damage']:+9.4f} {bar}")
    if "saved" in report:
        lines.append(f"saved the ablated model to {report['saved']}")
    return "\n".join(lines)


TEXT = {"tokens": tokens_text, "attention": attention_text, "lens": lens_text, "ablate": ablate_text}
