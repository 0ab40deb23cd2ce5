"""The one training loop: every stage plugs its objective (engine/objectives/base.py) into it.

Per step: `grad_accum` micro-batches forward and backward under the run's precision, gradients
averaged over ranks, clipped, the optimizer and its schedule stepped. Then, on their cadences,
a `metrics` event (one host sync a step), evaluation, a sample, a checkpoint. Control messages
(`stop`, `save`) are read between steps; under DDP rank 0's decision is broadcast so every rank
checkpoints and stops at the same step. Rank 0 alone emits events and writes files.

With `parallel = "fsdp"` under torchrun the model is sharded (engine/sharding.py): FSDP averages
the gradients itself (once a step, in the last micro-batch's backward), the norm is taken over
every rank's shard, every rank evaluates and samples (each forward needs every shard) with the
same random draws, and a checkpoint gathers the weights to rank 0 while each rank writes its
shard of the optimizer state.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from engine import device as dev
from engine import sharding
from engine.checkpoints import prune_checkpoints, rng_state, set_rng_state, write_checkpoint
from engine.events import event, finished, log, phase
from engine.inspection.training import LayerStats
from engine.objectives.base import Objective, ObjectiveContext
from engine.optim import before_step, build_optimizer, build_scheduler
from engine.project.fileio import disk_full
from engine.project.layout import FINAL, OPTIMIZER_DCP, step_name
from engine.project.problems import Diverged, LLMLabError, Problem
from engine.project.runs import resume_point
from engine.project.sizing import flops_per_token


class Trainer:
    """Runs `objective` for `ctx.config.steps` optimizer steps; `run()` returns the report."""

    def __init__(
        self,
        ctx: ObjectiveContext,
        objective: Objective,
        emit: Callable[[dict], None] | None = None,
        control: Callable[[], str | None] | None = None,
        state: dict | None = None,
    ):
        self.ctx, self.objective, self.cfg = ctx, objective, ctx.config
        self._emit = emit or (lambda ev: None)
        self._control = control or (lambda: None)
        self.sharded = ctx.world_size > 1 and self.cfg.parallel == "fsdp"
        if self.sharded:
            sharding.shard_model(objective.module, ctx.device)
        self.params = [p for p in objective.module.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(objective.module, self.cfg.optimizer, self.cfg.lr)
        self.scheduler = build_scheduler(self.optimizer, self.cfg.scheduler, self.cfg.warmup_steps, self.cfg.steps)
        self.step, self.tokens_seen, self.elapsed = 0, 0, 0.0
        self.train_loss: float | None = None
        self.last_eval: dict = {}
        self._peak_flops = dev.peak_flops(ctx.device)
        self._flops_per_token = flops_per_token(ctx.project.model, ctx.model.config.vocab_size, self.cfg.seq_len)
        self.layer_stats = LayerStats(objective.module, self.cfg.eval_every) if self.cfg.layer_stats else None
        if state is not None:
            self.load_state_dict(state)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> dict:
        """Train to the configured step count (or a `stop`), checkpoint, return the report."""
        self.emit(
            event(
                "started",
                stage=self.ctx.stage,
                run_dir=_str(self.ctx.run_dir),
                device=str(self.ctx.device),
                precision=self.ctx.precision.name,
                world_size=self.ctx.world_size,
                parameters=sum(p.numel() for p in self.params),
                start_step=self.step,
                total_steps=self.cfg.steps,
                resumed=self.step > 0,
            )
        )
        if self.cfg.compile:
            warning = dev.compile_model(self.ctx.model)
            self.emit(
                log(
                    warning or "compile: torch.compile is on (graphs that fail run eagerly)",
                    "warning" if warning else "info",
                )
            )
        self.emit(phase("first step", f"training step {self.step + 1}, the first of this run"))
        self.objective.module.train()
        status, start, elapsed_before, session_steps = "completed", time.perf_counter(), self.elapsed, 0
        try:
            while self.step < self.cfg.steps:
                command = self._poll_control()
                if command == "stop":
                    status = "stopped"
                    break
                if command == "save":
                    self.checkpoint(step_name(self.step))
                step_start = time.perf_counter()
                values, tokens = self.train_step()
                now = time.perf_counter()
                session_steps += 1
                self.elapsed = elapsed_before + now - start
                self._log_metrics(values, tokens, now - step_start, (now - start) / session_steps)
                self._on_cadence()
        except torch.cuda.OutOfMemoryError as error:
            raise LLMLabError(_oom_advice(self.ctx.stage, self.cfg)) from error
        except Diverged as diverged:
            self.elapsed = elapsed_before + time.perf_counter() - start
            self.emit(finished("diverged", self.report(), run_dir=_str(self.ctx.run_dir), message=str(diverged)))
            raise
        if status == "completed" and self.cfg.eval_every > 0 and self.step % self.cfg.eval_every:
            self.evaluate()  # the final measures, unless this step's evaluation gave them
        self.elapsed = elapsed_before + time.perf_counter() - start
        self.checkpoint(FINAL if status == "completed" else step_name(self.step))
        report = self.report()
        self.emit(finished(status, report, run_dir=_str(self.ctx.run_dir)))
        return report

    def accumulate(self) -> tuple[torch.Tensor, dict, int, object]:
        """Forward and backward over one step's micro-batches; the gradients are left in `.grad`.

        Each micro-batch's mean loss is divided by grad_accum, so k micro-batches of b rows give
        the gradient of one batch of k·b rows. Returns (mean loss, mean metrics, tokens, the last
        micro-batch).
        """
        k = self.cfg.grad_accum
        loss_sum, metric_sums, tokens = 0.0, {}, 0
        for i in range(k):
            with self.ctx.precision.autocast():
                batch = self.objective.next_batch()
                loss, metrics = self.objective.loss(batch)
            sharding.sync_gradients(self.objective.module, i == k - 1)
            (loss / k).backward()
            loss_sum = loss_sum + loss.detach()
            for name, value in metrics.items():
                value = value.detach() if isinstance(value, torch.Tensor) else value
                metric_sums[name] = metric_sums.get(name, 0.0) + value
            tokens += self.objective.tokens(batch)
        metrics = {name: value / k for name, value in metric_sums.items()}
        return loss_sum / k, metrics, tokens, batch

    def clip_gradients(self) -> torch.Tensor:
        """The global gradient norm before clipping; gradients scaled down to grad_clip if above."""
        return sharding.grad_norm(self.params, self.cfg.grad_clip)

    def train_step(self) -> tuple[dict, int]:
        """One optimizer step; returns its measures as floats (the step's one host sync, made before
        the update so that a non-finite loss or gradient never reaches the weights)."""
        stats = self.layer_stats if self.layer_stats is not None and self.layer_stats.due(self.step + 1) else None
        with stats.watching() if stats else contextlib.nullcontext():
            loss, metrics, tokens, batch = self.accumulate()
        with self.ctx.precision.autocast():
            before_step(self.optimizer, self.objective.module, batch)  # Sophia's Hessian refresh
        if not self.sharded:  # FSDP has reduced them in the backward
            dev.all_reduce_gradients(self.params)
        if stats:
            stats.before_update()
        grad_norm = self.clip_gradients()
        lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
        values = _to_floats({**metrics, "loss": loss, "grad_norm": grad_norm}) | {"lr": lr}
        if not (math.isfinite(values["loss"]) and math.isfinite(values["grad_norm"])):
            raise Diverged(self._divergence(values))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if stats:
            self.emit(event("layers", step=self.step, layers=stats.after_update()))
        tokens *= self.ctx.world_size  # every rank trains on as many tokens as this one
        self.tokens_seen += tokens
        return values, tokens

    def _divergence(self, values: dict) -> str:
        """What went non-finite at this step, where a resume would start, and what to try."""
        stage, cfg = self.ctx.stage, self.cfg
        run_dir = self.ctx.run_dir
        point = resume_point(run_dir) if run_dir is not None else None
        start = f"its checkpoint {point.name}" if point is not None else "the start (no checkpoint yet)"
        return (
            f"{stage}: training diverged at step {self.step + 1}: loss {values['loss']:.4g}, gradient norm "
            f"{values['grad_norm']:.4g}; the update was not applied and the run can resume from {start}. "
            f"Try a lower {stage}.lr (now {cfg.lr:g}), a longer {stage}.warmup_steps (now {cfg.warmup_steps}) "
            f"or gradient clipping {stage}.grad_clip (now {cfg.grad_clip:g}), e.g. --resume --set "
            f"{stage}.lr={cfg.lr / 10:g}"
        )

    # -- cadences ---------------------------------------------------------------------------

    def _due(self, every: int) -> bool:
        """Whether a cadence of `every` steps (0: never) falls on this step."""
        return every > 0 and self.step % every == 0

    def _on_cadence(self) -> None:
        last = self.step == self.cfg.steps
        if self._due(self.cfg.eval_every):
            self.evaluate()
        if self._due(self.cfg.sample_every):
            self.sample()
        if self._due(self.cfg.save_every) and not last:
            self.checkpoint(step_name(self.step))

    def evaluate(self) -> dict:
        """The objective's held-out measures (rank 0; every rank when sharded), emitted as an `eval` event."""
        if self.ctx.is_main or self.sharded:
            with _inference(self.objective.module, self.ctx.precision):
                self.last_eval = self.objective.evaluate()
            if self.last_eval:
                self.emit(event("eval", step=self.step, **self.last_eval))
        return self.last_eval

    def sample(self) -> None:
        if self.ctx.is_main or self.sharded:
            with _inference(self.objective.module, self.ctx.precision), self._same_draws():
                samples = self.objective.sample()
            if samples:
                self.emit(event("sample", step=self.step, samples=samples))

    def checkpoint(self, name: str) -> Path | None:
        """Write checkpoint `name` (rank 0; every rank gives its RNG and data state, and when sharded
        its part of the weights and its shard of the optimizer state)."""
        if self.ctx.run_dir is None:
            return None
        ranks = dev.gather_objects({"rng": rng_state(), "objective": self.objective.state_dict()})
        model, optimizer_dir = self.ctx.model, None
        if self.sharded:
            weights = sharding.full_state_dict(model)
            optimizer_dir = self.ctx.run_dir / f".{name}.optimizer.tmp"
            sharding.save_optimizer(model, self.optimizer, optimizer_dir)
            model = sharding.plain_model(model, weights) if self.ctx.is_main else None
        if not self.ctx.is_main:
            return None
        try:
            path = write_checkpoint(
                self.ctx.run_dir / name,
                model,
                self.ctx.tokenizer,
                self.objective,
                {**self.state_dict(), "ranks": ranks},
                optimizer_dir,
            )
        except (OSError, RuntimeError) as error:
            raise (disk_full(error, self.ctx.run_dir / name) or error) from error
        pruned = prune_checkpoints(self.ctx.run_dir, self.cfg.keep_last)
        self.emit(
            event("checkpoint", step=self.step, path=str(path), final=name == FINAL, pruned=[p.name for p in pruned])
        )
        return path

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "elapsed": self.elapsed,
            "train_loss": self.train_loss,
            "last_eval": self.last_eval,
            "optimizer": None if self.sharded else self.optimizer.state_dict(),  # None: in OPTIMIZER_DCP
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a checkpoint's trainer state; this rank's RNG and data position last."""
        settings = [{k: v for k, v in group.items() if k != "params"} for group in self.optimizer.param_groups]
        self._load_optimizer(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._apply_settings(settings)
        self.step, self.tokens_seen, self.elapsed = state["step"], state["tokens_seen"], state["elapsed"]
        self.train_loss, self.last_eval = state["train_loss"], state["last_eval"]
        ranks = state["ranks"]
        if len(ranks) != self.ctx.world_size:
            self.emit(
                log(
                    f"resume: the checkpoint was written by {len(ranks)} processes and this run has "
                    f"{self.ctx.world_size}; every rank continues from rank 0's data position",
                    "warning",
                )
            )
        mine = ranks[self.ctx.rank] if len(ranks) == self.ctx.world_size else ranks[0]
        self.objective.load_state_dict(mine["objective"])
        set_rng_state(mine["rng"])

    def _load_optimizer(self, saved: dict | None) -> None:
        """The checkpoint's optimizer state: from its OPTIMIZER_DCP folder when a sharded run wrote it
        (into any sharding, or none), else from trainer_state.pt (not into a sharded run)."""
        if saved is None:
            sharding.load_optimizer(self.objective.module, self.optimizer, self.ctx.resume_dir / OPTIMIZER_DCP)
        elif self.sharded:
            rule = 'the checkpoint was written by an unsharded run; resume it with parallel = "ddp"'
            raise LLMLabError(Problem(f"{self.ctx.stage}.parallel", rule))
        else:
            self.optimizer.load_state_dict(saved)

    def _same_draws(self) -> contextlib.AbstractContextManager:
        """Under fsdp, every rank samples with the same seed so that all run the same forwards."""
        if not self.sharded:
            return contextlib.nullcontext()
        return _seeded(self.ctx.seed + self.step, self.ctx.device)

    def _apply_settings(self, settings: list[dict]) -> None:
        """This run's optimizer settings over a checkpoint's (a resume may change lr, betas, ...), and
        the lr of the next step from this run's schedule; unchanged settings give the same numbers."""
        for group, fresh in zip(self.optimizer.param_groups, settings):
            group.update(fresh)
        self.scheduler.base_lrs = [fresh["initial_lr"] for fresh in settings]
        epoch = self.scheduler.last_epoch
        for group, base, multiplier in zip(
            self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas
        ):
            group["lr"] = base * multiplier(epoch)

    def report(self) -> dict:
        return {
            "wall_time_s": self.elapsed,
            "steps": self.step,
            "tokens_seen": self.tokens_seen,
            "train_loss": self.train_loss,
            "eval_loss": self.last_eval.get("loss"),
            "bpb": self.last_eval.get("bpb"),
            "eval": self.last_eval,
        }

    # -- helpers ------------------------------------------------------------------------------

    def emit(self, ev: dict) -> None:
        if self.ctx.is_main:
            self._emit(ev)

    def _poll_control(self) -> str | None:
        command = self._control() if self.ctx.is_main else None
        return dev.broadcast_object(command)

    def _log_metrics(self, values: dict, tokens: int, step_time: float, mean_step_time: float) -> None:
        """The `metrics` event; `mean_step_time` (evaluations and checkpoints included) gives the ETA."""
        self.train_loss = values["loss"]
        metrics = {
            "step": self.step,
            **values,
            "tokens_per_s": tokens / step_time,
            "tokens_seen": self.tokens_seen,
            "step_time": step_time,
            "eta_s": mean_step_time * (self.cfg.steps - self.step),
        }
        if self.ctx.device.type == "cuda":
            metrics["gpu_memory_gb"] = torch.cuda.max_memory_allocated(self.ctx.device) / 1e9
            if self._peak_flops:
                per_gpu = metrics["tokens_per_s"] / self.ctx.world_size
                metrics["mfu"] = self._flops_per_token * per_gpu / self._peak_flops
        shares = self.objective.source_shares()
        if shares:
            metrics["shares"] = shares
        self.emit(event("metrics", **metrics))


@contextlib.contextmanager
def _inference(module: torch.nn.Module, precision: dev.Precision):
    """eval mode, no_grad and autocast for evaluation and samples; train mode again after."""
    module.eval()
    try:
        with torch.no_grad(), precision.autocast():
            yield
    finally:
        module.train()


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Random draws from `seed` inside the block; the run's own generators untouched after it."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _to_floats(values: dict) -> dict:
    """Tensors to floats in one host sync; plain numbers pass through."""
    names = [n for n, v in values.items() if isinstance(v, torch.Tensor)]
    if not names:
        return values
    # on the accelerator when any value is there (nccl reduces CUDA tensors only)
    device = next((values[n].device for n in names if values[n].device.type != "cpu"), torch.device("cpu"))
    stacked = dev.average_over_ranks(torch.stack([values[n].float().reshape(()).to(device) for n in names]))
    return {**values, **dict(zip(names, stacked.tolist()))}


def _oom_advice(stage: str, cfg) -> str:
    return (
        f"{stage}.batch_size: CUDA ran out of memory with micro-batches of {cfg.batch_size} × "
        f"{cfg.seq_len} tokens; lower {stage}.batch_size (or {stage}.seq_len) and raise "
        f"{stage}.grad_accum to keep the global batch (e.g. batch_size = {max(1, cfg.batch_size // 2)}, "
        f"grad_accum = {cfg.grad_accum * 2})"
    )


def _str(path) -> str | None:
    return None if path is None else str(path)
